"""Stage ``sft``: fine-tune the base model on curated multi-turn tool-use trajectories.

DVC mode:    ``python -m pipelines.sft`` (reads ``params.yaml: sft``, ``models/base``,
             ``data/sft/train.jsonl``; writes ``models/sft/``, ``metrics/sft.json``, ``plots/sft/``)
Standalone:  ``python -m pipelines.sft --data FILE.jsonl --base DIR --out DIR [--max-samples N] [--epochs N]``
             (any file in the trajectory schema, the public GAIR/LIMI dataset included; writes
             ``DIR/metrics.json`` with ``train_tokens``, ``train_seconds``, ``peak_rss_mb``)

How it trains (transformers ``Trainer`` + peft):
- each sample is rendered with the same chat template the agent uses (from the base directory, with
  the sample's tools) and the loss covers assistant tokens only: the template's ``{% generation %}``
  marks give the mask (reasoning, text, tool calls and ``<|im_end|>`` of every assistant turn);
- samples longer than ``max_length`` are dropped with a message, never truncated;
- batches are packed padding-free (``DataCollatorWithFlattening``): samples are concatenated with
  position ids restarting at 0 for each, which keeps them apart under SDPA/flash attention
  (``use_cache`` is off so transformers sees the packing), and the loss is per token;
- logits are computed only where the next token is trained on (``logits_to_keep`` with those
  positions): an agent trajectory is mostly tool output and prompts, and the full-vocabulary logits of
  every token were the largest tensors of a step (measured in ``benchmarks/sft.py``);
- LoRA by default (``method: full`` for full fine-tuning); LIMI's optimiser settings are the
  defaults: AdamW (0.9, 0.98), weight decay 0.1, cosine decay to 1/10 of the peak, short warmup;
- checkpoints every ``save_steps``; a rerun with the same data and params resumes from the last one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pipelines.core.console import interactive, main_guard
from pipelines.core.errors import UserError
from pipelines.core.io import atomic_dir, atomic_write_json, atomic_write_text
from pipelines.core.params import SFTParams, load_params, params_hash
from pipelines.core.paths import repo_root
from pipelines.core.schema import read_jsonl

log = logging.getLogger("pipelines.sft")
IGNORE = -100


# ------------------------------------------------------------------ data
def encode_sample(tokenizer, record: dict[str, Any]) -> dict[str, list[int]]:
    """Token ids and labels (assistant tokens only, others -100) of one trajectory record."""
    messages = [_for_template(m) for m in record["messages"]]
    out = tokenizer.apply_chat_template(messages, tools=record.get("tools") or None, tokenize=True,
                                        return_dict=True, return_assistant_tokens_mask=True)
    ids = list(out["input_ids"])
    mask = list(out["assistant_masks"])
    if not any(mask):
        raise ValueError("no assistant tokens to train on (does the template have generation marks?)")
    return {"input_ids": ids, "labels": [t if m else IGNORE for t, m in zip(ids, mask)]}


def _for_template(message: dict[str, Any]) -> dict[str, Any]:
    """Drop keys the template does not read; ``None`` content becomes empty text."""
    msg = {k: v for k, v in message.items() if k in ("role", "content", "tool_calls", "tool_call_id", "reasoning_content")}
    if msg.get("content") is None:
        msg["content"] = ""
    return msg


def load_training_set(path: Path, tokenizer, max_length: int, max_samples: int = 0) -> tuple[list[dict], list[str]]:
    """Encoded samples and the messages about samples dropped for length."""
    samples, dropped = [], []
    for lineno, record in read_jsonl(path):
        if not isinstance(record, dict) or "messages" not in record:
            raise UserError(f"{path}:{lineno}: not a trajectory record (no 'messages')")
        try:
            encoded = encode_sample(tokenizer, record)
        except ValueError as exc:
            raise UserError(f"{path}:{lineno}: {exc}") from None
        n = len(encoded["input_ids"])
        if n > max_length:
            dropped.append(f"{path}:{lineno}: {n} tokens > sft.max_length {max_length}; dropped, not truncated")
            continue
        samples.append(encoded)
        if max_samples and len(samples) >= max_samples:
            break
    for message in dropped:
        log.warning(message)
    if not samples:
        raise UserError(f"{path}: no trainable samples ({len(dropped)} over max_length); see curate's report")
    return samples, dropped


# ------------------------------------------------------------------ model
def load_model(base: Path, params: SFTParams):
    """The base model, wrapped in LoRA unless ``method: full``; gradient checkpointing per params."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if _use_bf16(params) else torch.float32
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, attn_implementation="sdpa")
    model.config.use_cache = False  # packed batches are only kept apart when transformers sees no cache
    if params.method == "lora":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=params.lora.r, lora_alpha=params.lora.alpha, lora_dropout=params.lora.dropout,
                            target_modules=params.lora.target_modules, task_type="CAUSAL_LM")
        model = get_peft_model(model, config)
    return model


def _use_bf16(params: SFTParams) -> bool:
    import torch

    if params.bf16 == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return params.bf16 == "true"


def _use_checkpointing(params: SFTParams) -> bool:
    import torch

    if params.gradient_checkpointing == "auto":  # it trades ~30% speed for memory: worth it on a GPU only
        return torch.cuda.is_available()
    return params.gradient_checkpointing == "true"


# ------------------------------------------------------------------ training
class _TokenCounter:
    """Wraps the collator to count the tokens (and assistant tokens) each step trains on."""

    def __init__(self, collator):
        self.collator = collator
        self.tokens = 0
        self.target_tokens = 0

    def __call__(self, features):
        batch = self.collator(features)
        self.tokens += int(batch["input_ids"].numel())
        self.target_tokens += int((batch["labels"] != IGNORE).sum())
        batch["logits_to_keep"] = target_positions(batch["labels"])
        return batch


def target_positions(labels):
    """Positions (in the one packed row) whose next token is trained on: the only logits the loss needs."""
    return (labels[0, 1:] != IGNORE).nonzero().squeeze(-1)


def target_loss(outputs, labels, num_items_in_batch=None):
    """Summed cross-entropy over the kept logits, per target token of the (accumulated) batch."""
    import torch.nn.functional as F

    shifted = labels[0, 1:]
    targets = shifted[shifted != IGNORE].to(outputs.logits.device)
    loss = F.cross_entropy(outputs.logits[0].float(), targets, reduction="sum")
    return loss / (num_items_in_batch if num_items_in_batch is not None else max(len(targets), 1))


def train(samples: list[dict], base: Path, out: Path, params: SFTParams, *, checkpoints: Path,
          plots: Path | None = None, tracker=None) -> dict[str, Any]:
    """Train and save adapter (or weights) + tokenizer to ``out``; return the metrics."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, DataCollatorWithFlattening, Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    torch.manual_seed(params.seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = load_model(base, params)
    dataset = Dataset.from_list(samples)  # only int lists: no Arrow schema unification surprises
    counter = _TokenCounter(DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE))
    steps_per_epoch = max(1, -(-len(samples) // (params.batch_size * params.grad_accum)))
    total_steps = params.max_steps or steps_per_epoch * params.epochs
    history: list[dict[str, float]] = []
    started = time.perf_counter()

    class Recorder(TrainerCallback):
        last_time, last_tokens = started, 0

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "loss" not in logs:
                return
            now = time.perf_counter()
            rate = (counter.tokens - self.last_tokens) / max(now - self.last_time, 1e-9)
            self.last_time, self.last_tokens = now, counter.tokens
            row = {"step": state.global_step, "loss": float(logs["loss"]),
                   "learning_rate": float(logs.get("learning_rate", 0.0)),
                   "grad_norm": float(logs.get("grad_norm", 0.0) or 0.0), "tokens_per_s": round(rate, 2)}
            history.append(row)
            if tracker is not None:
                tracker.log_metrics({k: v for k, v in row.items() if k != "step"}, step=state.global_step)
            if not interactive():
                log.info("step %d/%d loss %.4f lr %.2e %.0f tok/s", state.global_step, total_steps, row["loss"],
                         row["learning_rate"], rate)

    args = TrainingArguments(
        output_dir=str(checkpoints), per_device_train_batch_size=params.batch_size,
        gradient_accumulation_steps=params.grad_accum, num_train_epochs=params.epochs,
        max_steps=params.max_steps or -1, learning_rate=params.learning_rate, weight_decay=params.weight_decay,
        adam_beta1=params.adam_betas[0], adam_beta2=params.adam_betas[1], lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": params.min_lr_ratio},
        warmup_steps=max(0, round(params.warmup_ratio * total_steps)), max_grad_norm=params.max_grad_norm,
        logging_steps=1, save_strategy="steps", save_steps=params.save_steps, save_total_limit=2,
        seed=params.seed, data_seed=params.seed, report_to="none", remove_unused_columns=False,
        bf16=_use_bf16(params), dataloader_num_workers=0,
        disable_tqdm=not interactive(), use_cpu=not torch.cuda.is_available(),
    )
    if _use_checkpointing(params):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if params.method == "lora":
            model.enable_input_require_grads()  # frozen embeddings would otherwise cut the gradient path
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=counter, callbacks=[Recorder()],
                      compute_loss_func=target_loss)
    trainer.remove_callback(PrinterCallback)  # our Recorder logs each step once, as a plain line
    resume = _last_checkpoint(checkpoints)
    if resume:
        log.info("resuming from %s", resume)
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - started
    metrics = {
        "final_loss": history[-1]["loss"] if history else float(result.training_loss),
        "mean_loss": float(result.training_loss), "steps": int(result.global_step),
        "samples": len(samples), "train_tokens": counter.tokens, "target_tokens": counter.target_tokens,
        "train_seconds": round(seconds, 2), "tokens_per_s": round(counter.tokens / max(seconds, 1e-9), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "resumed_from": str(resume) if resume else None, "method": params.method,
    }
    if trainer.is_world_process_zero():  # under accelerate launch only rank 0 writes
        with atomic_dir(out) as tmp:
            trainer.model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / "sft_info.json").write_text(json.dumps({"base": str(base), "method": params.method,
                                                          **{k: metrics[k] for k in ("final_loss", "steps")}}, indent=2))
        if plots is not None:
            write_plots(history, plots)
    return metrics


def _last_checkpoint(directory: Path) -> Path | None:
    found = sorted(directory.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])) if directory.exists() else []
    return found[-1] if found else None


def write_plots(history: list[dict[str, float]], plots: Path) -> None:
    """``loss.csv`` (step, loss, learning_rate, grad_norm, tokens_per_s) and ``loss.png``."""
    plots.mkdir(parents=True, exist_ok=True)
    fields = ["step", "loss", "learning_rate", "grad_norm", "tokens_per_s"]
    rows = [",".join(fields)] + [",".join(str(r[f]) for f in fields) for r in history]
    atomic_write_text(plots / "loss.csv", "\n".join(rows) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.plot([r["step"] for r in history], [r["loss"] for r in history], marker=".")
    ax1.set(xlabel="step", ylabel="loss (assistant tokens)", title="SFT loss")
    ax2.plot([r["step"] for r in history], [r["learning_rate"] for r in history], color="tab:orange")
    ax2.set(xlabel="step", ylabel="learning rate", title="schedule")
    fig.tight_layout()
    fig.savefig(plots / "loss.png", dpi=100)
    plt.close(fig)


def run_signature(data: Path, base: Path, params: SFTParams) -> str:
    """What a checkpoint must match to be resumed: the data, the base weights' config, the params."""
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    base_id = (base / "config.json").read_text() if (base / "config.json").exists() else str(base)
    return params_hash({"data": digest, "base": base_id, "params": params.model_dump(mode="json")})


def prepare_checkpoints(directory: Path, signature: str) -> None:
    """Keep checkpoints of the same run (resume); wipe those of another run."""
    marker = directory / "run_signature"
    if directory.exists() and (not marker.exists() or marker.read_text() != signature):
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    marker.write_text(signature)


def run(data: Path, base: Path, out: Path, params: SFTParams, *, checkpoints: Path, plots: Path | None,
        metrics_file: Path | None, tracker=None, max_samples: int = 0) -> dict[str, Any]:
    """Load, train, write metrics; the shared body of both modes."""
    from transformers import AutoTokenizer

    from pipelines.llm.local.model import check_model_dir

    check_model_dir(base)
    if not data.exists():
        raise UserError(f"{data}: training data not found; run `dvc repro curate` first")
    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
    except (OSError, ValueError) as exc:  # e.g. a config.json cut off mid-write
        raise UserError(f"{base}: cannot load the model directory: {str(exc).splitlines()[0]}") from None
    samples, dropped = load_training_set(data, tokenizer, params.max_length, max_samples)
    prepare_checkpoints(checkpoints, run_signature(data, base, params))
    log.info("training on %d samples (%d tokens), %d dropped for length, method %s", len(samples),
             sum(len(s["input_ids"]) for s in samples), len(dropped), params.method)
    metrics = train(samples, base, out, params, checkpoints=checkpoints, plots=plots, tracker=tracker)
    metrics["dropped_for_length"] = len(dropped)
    if metrics_file is not None:
        atomic_write_json(metrics_file, metrics)
    if tracker is not None:
        tracker.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        tracker.log_dataset(data, context="training")
        for name in ("adapter_config.json", "adapter_model.safetensors", "sft_info.json"):
            if (out / name).exists():
                tracker.log_artifact(out / name, artifact_path="adapter")
        if plots is not None and (plots / "loss.png").exists():
            tracker.log_artifact(plots / "loss.png", artifact_path="plots")
    shutil.rmtree(checkpoints, ignore_errors=True)  # finished: checkpoints only serve a resume
    return metrics


def _relaunch_distributed(n: int) -> None:
    """Re-run this command under ``accelerate launch`` with ``n`` processes (FSDP/DDP via accelerate)."""
    if os.environ.get("LOCAL_RANK") is not None:
        return
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(n), "-m", "pipelines.sft",
           *sys.argv[1:]]
    log.info("launching %d processes: %s", n, " ".join(cmd))
    raise SystemExit(subprocess.call(cmd))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.sft", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="trajectory JSONL (standalone mode; default: data/sft/train.jsonl)")
    parser.add_argument("--base", help="base model directory (default: models/base)")
    parser.add_argument("--out", help="output directory (default: models/sft)")
    parser.add_argument("--max-samples", type=int, default=0, help="train on at most N samples")
    parser.add_argument("--epochs", type=int, help="override sft.epochs")
    parser.add_argument("--max-steps", type=int, help="override sft.max_steps")
    args = parser.parse_args()
    root = repo_root()
    standalone = args.data is not None
    params = load_params().sft if (root / "params.yaml").exists() else SFTParams()
    overrides = {k: v for k, v in (("epochs", args.epochs), ("max_steps", args.max_steps)) if v is not None}
    if overrides:
        params = params.model_copy(update=overrides)
    if params.num_processes > 1:
        _relaunch_distributed(params.num_processes)
    resolve = lambda p, d: Path(p) if p and Path(p).is_absolute() else root / (p or d)  # noqa: E731
    data, base = resolve(args.data, "data/sft/train.jsonl"), resolve(args.base, "models/base")
    out = resolve(args.out, "models/sft")
    checkpoints = out.parent / f".{out.name}.checkpoints"
    if standalone:
        metrics = run(data, base, out, params, checkpoints=checkpoints, plots=out / "plots",
                      metrics_file=out / "metrics.json", max_samples=args.max_samples)
    else:
        from pipelines.core.tracking import stage_run

        with stage_run("sft", load_params().group("sft")) as tracker:
            metrics = run(data, base, out, params, checkpoints=checkpoints, plots=root / "plots" / "sft",
                          metrics_file=root / "metrics" / "sft.json", tracker=tracker, max_samples=args.max_samples)
    log.info("trained %d steps on %d tokens in %.0fs (%.0f tok/s); final loss %.4f -> %s", metrics["steps"],
             metrics["train_tokens"], metrics["train_seconds"], metrics["tokens_per_s"], metrics["final_loss"], out)
    return 0


if __name__ == "__main__":
    main_guard(main)
