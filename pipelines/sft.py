"""Stage ``sft``: fine-tune the base model on curated multi-turn tool-use trajectories.

DVC mode:    ``python -m pipelines.sft`` (reads ``params.yaml: sft``, ``models/base``,
             ``data/sft/train.jsonl``; writes ``models/sft/``, ``metrics/sft.json``, ``plots/sft/``, all a
             function of those inputs; seconds, tokens/s and memory go to MLflow and ``reports/runs/sft.json``)
Standalone:  ``python -m pipelines.sft --data DATA --base DIR --out DIR [--max-samples N] [--epochs N]``
             (DATA: a JSONL file, a folder of JSONL/Parquet/Arrow files, or a Hugging Face dataset id
             ``owner/name[:split]``, loaded with ``datasets`` from the hub or its cache; records in the
             trajectory schema, the public GAIR/LIMI dataset included, read as curate reads them; writes
             ``DIR/metrics.json`` with ``train_tokens``, ``train_seconds``, ``peak_rss_mb``)

How it trains (transformers ``Trainer`` + peft):
- each sample is rendered with the same chat template the agent uses (from the base directory, with
  the sample's tools) and the loss covers assistant tokens only: the template's ``{% generation %}``
  marks give the mask (reasoning, text, tool calls and ``<|im_end|>`` of every assistant turn; in a
  family without an end-of-turn token, GLM-4.5, also the role token that hands the turn back);
- samples longer than ``max_length`` are dropped with a message, never truncated;
- batches are packed padding-free (``DataCollatorWithFlattening``): samples are concatenated with
  position ids restarting at 0 for each, which keeps them apart under SDPA/flash attention
  (``use_cache`` is off so transformers sees the packing), and the loss is per token;
- logits are computed only where the next token is trained on (``logits_to_keep`` with those
  positions): an agent trajectory is mostly tool output and prompts, and the full-vocabulary logits of
  every token were the largest tensors of a step (measured in ``benchmarks/sft.py``);
- LoRA by default (``method: full`` for full fine-tuning); LIMI's optimiser settings are the
  defaults: AdamW (0.9, 0.98), weight decay 0.1, cosine decay to 1/10 of the peak, short warmup;
  ``preset: limi`` sets the rest of its released recipe (1e-5 peak, 4 epochs over the data repeated
  twice, global batch 64, 128k tokens, full fine-tuning) for the keys the group leaves out;
- the loss goes through the output layer ``loss_chunk_tokens`` target positions at a time, recomputed
  in backward, so no ``targets x vocabulary`` logits exist (128k-token samples);
- gradient checkpointing on a GPU, and on a CPU from ``checkpointing_from_tokens`` tokens per batch;
- attention per ``attn_implementation`` (sdpa, eager, flash_attention_2, flex_attention, auto); Liger
  kernels where installed on a GPU (``liger``);
- ``num_processes > 1`` relaunches under ``accelerate launch`` with ``accelerate_config`` (FSDP, ZeRO-3
  in ``configs/accelerate/``);
- checkpoints every ``save_steps``; a rerun with the same data and params resumes from the last one;
- on an x86 CPU with AVX2, PyTorch's and MKL's AVX2 kernels whatever else the processor has
  (:mod:`pipelines.training.cpu_kernels`), so that CPU models with and without AVX-512 train the same
  weights; an ``ATEN_CPU_CAPABILITY`` or ``MKL_CBWR`` in the environment is kept.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

from pipelines.core.console import main_guard
from pipelines.core.datasets import resolve_sources
from pipelines.core.errors import UserError
from pipelines.core.io import atomic_write_json
from pipelines.core.params import load_params
from pipelines.training import cpu_kernels
from pipelines.training.config import SFTParams
from pipelines.core.paths import repo_root
from pipelines.training.run import run

log = logging.getLogger("pipelines.sft")


def launch_command(params: SFTParams, root: Path, argv: list[str]) -> list[str]:
    """``accelerate launch`` running this stage with ``argv`` in ``params.num_processes`` processes, with the
    config file ``params.accelerate_config`` (relative to ``root``; FSDP, DeepSpeed ZeRO-3) or accelerate's
    default config (DDP). A config file that is not there is a UserError naming the key."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(params.num_processes)]
    if params.accelerate_config:
        config = Path(params.accelerate_config)
        config = config if config.is_absolute() else root / config
        if not config.is_file():
            raise UserError(f"sft.accelerate_config: {params.accelerate_config} not found (the accelerate config "
                            f"file to launch {params.num_processes} processes with; see configs/accelerate/)")
        cmd += ["--config_file", str(config)]
    return [*cmd, "-m", "pipelines.sft", *argv]


def _relaunch_distributed(params: SFTParams, root: Path) -> None:
    """Re-run this command under ``accelerate launch`` (DDP, FSDP or DeepSpeed per ``sft.accelerate_config``)."""
    if os.environ.get("LOCAL_RANK") is not None:
        return
    cmd = launch_command(params, root, sys.argv[1:])
    log.info("launching %d processes: %s", params.num_processes, " ".join(cmd))
    raise SystemExit(subprocess.call(cmd))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.sft", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="trajectory JSONL file, folder of JSONL/Parquet/Arrow files, or Hugging Face "
                        "dataset id owner/name[:split] (standalone mode; default: data/sft/train.jsonl)")
    parser.add_argument("--base", help="base model directory (default: models/base)")
    parser.add_argument("--out", help="output directory (default: models/sft)")
    parser.add_argument("--max-samples", type=int, default=0, help="train on at most N samples")
    parser.add_argument("--epochs", type=int, help="override sft.epochs")
    parser.add_argument("--max-steps", type=int, help="override sft.max_steps")
    args = parser.parse_args()
    pinned = cpu_kernels.pin()  # before torch loads: one kernel set, so other CPU models train the same weights
    log.debug("CPU kernel settings: %s", pinned or "the libraries' own choice (no AVX2 and FMA)")
    root = repo_root()
    standalone = args.data is not None
    params = load_params().sft if (root / "params.yaml").exists() else SFTParams()
    overrides = {k: v for k, v in (("epochs", args.epochs), ("max_steps", args.max_steps)) if v is not None}
    if overrides:
        params = params.model_copy(update=overrides)
    if params.num_processes > 1:
        _relaunch_distributed(params, root)
    resolve = lambda p, d: Path(p) if p and Path(p).is_absolute() else root / (p or d)  # noqa: E731
    data = resolve_sources([args.data], root) if standalone else resolve(None, "data/sft/train.jsonl")
    base = resolve(args.base, "models/base")
    out = resolve(args.out, "models/sft")
    checkpoints = out.parent / f".{out.name}.checkpoints"
    if standalone:  # a measurement: its metrics.json keeps the timings that DVC outputs may not hold
        metrics = run(data, base, out, params, checkpoints=checkpoints, plots=out / "plots", metrics_file=None,
                      max_samples=args.max_samples)
        atomic_write_json(out / "metrics.json", metrics)
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
