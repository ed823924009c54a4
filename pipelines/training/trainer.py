"""The training loop: transformers ``Trainer`` with packing, target-only logits, checkpoints and resume."""

from __future__ import annotations

import json
import logging
import resource
import time
from pathlib import Path
from typing import Any

from pipelines.core.console import interactive
from pipelines.core.io import atomic_dir
from pipelines.training.config import SFTParams
from pipelines.core.paths import display_path
from pipelines.training.checkpoints import last_checkpoint
from pipelines.training.data import IGNORE
from pipelines.training.loss import ChunkedTargetLoss, TokenCounter, target_loss
from pipelines.training.model import longest_batch, load_model, save_model, use_bf16, use_checkpointing, use_liger
from pipelines.training.plots import write_plots

log = logging.getLogger(__name__)
#: Metrics that differ between two runs of the same inputs: kept out of DVC outputs (``record_timings``).
RUN_FACTS = ("train_seconds", "tokens_per_s", "peak_rss_mb", "resumed_from", "gradient_checkpointing", "cpu_kernels")


def train(samples: list[dict], base: Path, out: Path, params: SFTParams, *, checkpoints: Path,
          plots: Path | None = None, tracker=None) -> dict[str, Any]:
    """Train on encoded ``samples`` (``input_ids``, ``labels``) from the model in ``base``.

    Saves the adapter (or the full weights), the tokenizer and ``sft_info.json`` to ``out`` and, given
    ``plots``, the loss curve there; resumes from the last checkpoint in ``checkpoints``; logs each step
    to ``tracker``. Returns the metrics: losses, steps, token counts, and the :data:`RUN_FACTS`.
    """
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, DataCollatorWithFlattening, Trainer
    from transformers.trainer_callback import PrinterCallback

    torch.manual_seed(params.seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = load_model(base, params)
    counter = TokenCounter(DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE))
    steps_per_epoch = max(1, -(-len(samples) // (params.batch_size * params.grad_accum)))
    total_steps = params.max_steps or steps_per_epoch * params.epochs
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    batch_tokens = longest_batch([len(s["input_ids"]) for s in samples], params.batch_size)
    checkpointing = use_checkpointing(params, batch_tokens)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if params.method == "lora":
            model.enable_input_require_grads()  # frozen embeddings would otherwise cut the gradient path
    liger = use_liger(params)
    loss = loss_function(model, params, liger)
    cpu_kernels = torch.backends.cpu.get_cpu_capability()  # pipelines.training.cpu_kernels: AVX2 when pinned
    log.info("longest batch %d tokens: gradient checkpointing %s; loss %s; Liger kernels %s; CPU kernels %s",
             batch_tokens, "on" if checkpointing else "off", f"in chunks of {params.loss_chunk_tokens} targets"
             if isinstance(loss, ChunkedTargetLoss) else "over all target logits at once", "on" if liger else "off",
             cpu_kernels)
    trainer = Trainer(model=model, args=training_arguments(params, checkpoints, total_steps, liger=liger),
                      train_dataset=Dataset.from_list(samples),  # only int lists: no Arrow schema surprises
                      data_collator=counter, callbacks=[step_recorder(counter, history, total_steps, tracker)],
                      compute_loss_func=loss)
    trainer.remove_callback(PrinterCallback)  # our recorder logs each step once, as a plain line
    resume = last_checkpoint(checkpoints)
    if resume:
        log.info("resuming from %s", resume)
    try:
        result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    finally:
        if isinstance(loss, ChunkedTargetLoss):
            loss.remove()
    seconds = time.perf_counter() - started
    metrics = {
        "final_loss": history[-1]["loss"] if history else float(result.training_loss),
        "mean_loss": float(result.training_loss), "steps": int(result.global_step),
        "samples": len(samples), "train_tokens": counter.tokens, "target_tokens": counter.target_tokens,
        "method": params.method, "gradient_checkpointing": checkpointing,
        "train_seconds": round(seconds, 2), "tokens_per_s": round(counter.tokens / max(seconds, 1e-9), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "resumed_from": str(resume) if resume else None,
        "cpu_kernels": cpu_kernels,
    }
    # sharded weights (FSDP, ZeRO-3) are gathered by every process together; then only rank 0 writes
    state_dict = trainer.accelerator.get_state_dict(trainer.model_wrapped) if trainer.accelerator.num_processes > 1 \
        else None
    if trainer.is_world_process_zero():
        with atomic_dir(out) as tmp:
            save_model(trainer.model, tokenizer, tmp, state_dict)
            info = {"base": display_path(base), "method": params.method, "final_loss": metrics["final_loss"],
                    "steps": metrics["steps"]}
            (tmp / "sft_info.json").write_text(json.dumps(info, indent=2))
        if plots is not None:
            write_plots(history, plots)
    return metrics


def loss_function(model, params: SFTParams, liger: bool = False):
    """The loss for ``Trainer``: :class:`ChunkedTargetLoss` when ``params.loss_chunk_tokens`` is set, else
    :func:`target_loss` (logits of every target position at once). Under FSDP or DeepSpeed (accelerate launch
    sets ``ACCELERATE_USE_FSDP``/``ACCELERATE_USE_DEEPSPEED``) the output layer's weight is sharded outside its
    own forward, where the chunks would read it, and under DataParallel (several GPUs, one process) each replica
    would hand its hidden states to the one hook: there the loss is the unchunked one."""
    import os

    import torch

    sharded = any(os.environ.get(f"ACCELERATE_USE_{kind}", "").lower() in ("1", "true")
                  for kind in ("FSDP", "DEEPSPEED"))
    if not params.loss_chunk_tokens:
        return target_loss
    if sharded:
        log.info("sft.loss_chunk_tokens: sharded weights (FSDP/DeepSpeed): the loss takes all target logits at once")
        return target_loss
    if torch.cuda.device_count() > 1 and os.environ.get("LOCAL_RANK") is None:  # Trainer's DataParallel: replicas
        log.info("sft.loss_chunk_tokens: several GPUs in one process (DataParallel): the loss takes all target "
                 "logits at once; use sft.num_processes for one process per GPU")
        return target_loss
    return ChunkedTargetLoss(model, params.loss_chunk_tokens, fused=liger)


def training_arguments(params: SFTParams, checkpoints: Path, total_steps: int, liger: bool = False):
    """``TrainingArguments`` from the sft params: LIMI's AdamW and cosine schedule, a checkpoint every
    ``save_steps`` into ``checkpoints``, a log line every step, seeded data order, CPU unless a GPU is there."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(checkpoints), per_device_train_batch_size=params.batch_size,
        gradient_accumulation_steps=params.grad_accum, num_train_epochs=params.epochs,
        max_steps=params.max_steps or -1, learning_rate=params.learning_rate, weight_decay=params.weight_decay,
        adam_beta1=params.adam_betas[0], adam_beta2=params.adam_betas[1], lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": params.min_lr_ratio},
        warmup_steps=max(0, round(params.warmup_ratio * total_steps)), max_grad_norm=params.max_grad_norm,
        logging_steps=1, save_strategy="steps", save_steps=params.save_steps, save_total_limit=2,
        seed=params.seed, data_seed=params.seed, report_to="none", remove_unused_columns=False,
        bf16=use_bf16(params), dataloader_num_workers=0, use_liger_kernel=liger,
        disable_tqdm=not interactive(), use_cpu=not torch.cuda.is_available(),
    )


def step_recorder(counter: TokenCounter, history: list[dict[str, float]], total_steps: int, tracker=None):
    """A ``TrainerCallback`` appending each logged step (step, loss, learning_rate, grad_norm, tokens_per_s)
    to ``history``, sending it to ``tracker`` and, off a terminal, logging it as one line."""
    from transformers import TrainerCallback

    class Recorder(TrainerCallback):
        last_time, last_tokens = time.perf_counter(), 0

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

    return Recorder()
