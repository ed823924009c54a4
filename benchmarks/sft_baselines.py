"""The configurations ``benchmarks/sft.py`` compares, each run in its own process: TRL ``SFTTrainer`` with its
defaults (the baseline), TRL ``SFTTrainer`` set up as a careful user would (padding-free, no gradient
checkpointing on the CPU, batch size 1) and the sft stage's trainer, with the counters and timers around
``Trainer.train``."""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

IGNORE = -100


def as_trl_row(record: dict) -> dict:
    """A conversational TRL row: arguments and tools as JSON strings so Arrow adds no null keys."""
    messages = []
    for message in record["messages"]:
        message = dict(message)
        if message.get("tool_calls"):
            message["tool_calls"] = [
                {**call, "function": {"name": call["function"]["name"],
                                      "arguments": json.dumps(call["function"]["arguments"], ensure_ascii=False)}}
                for call in message["tool_calls"]]
        messages.append(message)
    return {"messages": messages, "tools": json.dumps(record.get("tools") or [], ensure_ascii=False)}


class BatchCounter:
    """Wraps a collator: non-padding tokens, tokens as batched (padding included), target tokens."""

    def __init__(self, collator):
        self.collator = collator
        self.tokens = self.padded = self.targets = 0

    def __call__(self, features):
        batch = self.collator(features)
        mask = batch.get("attention_mask")
        self.padded += int(batch["input_ids"].numel())
        self.tokens += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
        self.targets += int((batch["labels"] != IGNORE).sum())
        return batch


def time_training_loops(timing: dict) -> None:
    """Record around ``Trainer.train``: seconds, CPU seconds, load average, peak RSS before it."""
    from transformers import Trainer

    original = Trainer.train

    def timed(self, *args, **kwargs):
        timing["rss_before_loop_mb"] = peak_rss_mb()
        timing["load_start"] = os.getloadavg()[0]
        cpu, started = time.process_time(), time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            timing["seconds"] = time.perf_counter() - started
            timing["cpu_seconds"] = time.process_time() - cpu
            timing["load_end"] = os.getloadavg()[0]

    Trainer.train = timed


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_baseline(records: list[dict], base: Path, work: Path, epochs: int, careful: bool = False) -> dict:
    """TRL SFTTrainer defaults (padding, gradient checkpointing), assistant-only loss, batch size 2; ``careful``:
    padding-free, no gradient checkpointing, batch size 1 (what a user tuning TRL for a CPU would set)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from pipelines.training.config import LoraParams
    from pipelines.training.data import encode_sample

    timing: dict = {}
    time_training_loops(timing)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    lora = LoraParams()
    peft_config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                             target_modules=lora.target_modules, task_type="CAUSAL_LM")
    tuned = {"padding_free": True, "gradient_checkpointing": False} if careful else {}
    args = SFTConfig(output_dir=str(work / ("trl-careful" if careful else "trl")),
                     per_device_train_batch_size=1 if careful else 2, num_train_epochs=epochs,
                     assistant_only_loss=True, max_length=None, bf16=False, save_strategy="no", report_to="none",
                     disable_tqdm=True, **tuned)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list([as_trl_row(r) for r in records]),
                         processing_class=tokenizer, peft_config=peft_config)
    mismatched = 0 if len(trainer.train_dataset) == len(records) else len(records)
    for row, record in zip(trainer.train_dataset, records):  # the map keeps order: row i is record i
        ours = encode_sample(tokenizer, record)
        labels = row.get("labels") or [t if m else IGNORE for t, m in zip(row["input_ids"], row["assistant_masks"])]
        mismatched += row["input_ids"] != ours["input_ids"] or list(labels) != ours["labels"]
    counter = BatchCounter(trainer.data_collator)
    trainer.data_collator = counter  # read when the dataloader is built, inside train() (padding-free checks
    # the collator only in __init__)
    trainer.train()
    return {"tokens": counter.tokens, "padded_tokens": counter.padded, "target_tokens": counter.targets,
            "mismatched_samples": mismatched, "gradient_checkpointing": bool(trainer.args.gradient_checkpointing),
            **timing}


def run_stage(records: list[dict], base: Path, work: Path, epochs: int) -> dict:
    """``pipelines.training.trainer.train`` with the stage's CPU default: LoRA, batch size 1."""
    from transformers import AutoTokenizer

    from pipelines.training.config import SFTParams
    from pipelines.training.data import encode_sample
    from pipelines.training.trainer import train

    timing: dict = {}
    time_training_loops(timing)
    tokenizer = AutoTokenizer.from_pretrained(base)
    samples = [encode_sample(tokenizer, r) for r in records]
    params = SFTParams(method="lora", batch_size=1, epochs=epochs)
    metrics = train(samples, base, work / "stage-out", params, checkpoints=work / "stage-checkpoints")
    return {"tokens": metrics["train_tokens"], "padded_tokens": metrics["train_tokens"],
            "target_tokens": metrics["target_tokens"], "mismatched_samples": 0,
            "gradient_checkpointing": metrics["gradient_checkpointing"],
            "stage_train_seconds": metrics["train_seconds"],
            **timing}
