"""One SFT run from files: check the inputs, encode the data, train, write and log the metrics."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from pipelines.core.datasets import DataSource, digest
from pipelines.core.errors import UserError
from pipelines.core.io import atomic_write_json
from pipelines.training.config import SFTParams
from pipelines.training.checkpoints import prepare_checkpoints, run_signature
from pipelines.training.data import load_training_set
from pipelines.training.model import attention
from pipelines.training.trainer import RUN_FACTS, train

log = logging.getLogger(__name__)


def run(data: Path | list[DataSource], base: Path, out: Path, params: SFTParams, *, checkpoints: Path,
        plots: Path | None, metrics_file: Path | None, tracker=None, max_samples: int = 0) -> dict[str, Any]:
    """Train the model in ``base`` on the trajectory file ``data`` (or the sources of
    :func:`pipelines.core.datasets.resolve_sources`: JSONL, Parquet, Arrow, a Hugging Face id) and write the
    result to ``out``. Each sample is seen ``params.repeat`` times an epoch.

    ``metrics_file`` gets the metrics that are a function of the inputs; the run-dependent ones
    (:data:`~pipelines.training.trainer.RUN_FACTS`: seconds, tokens/s, memory, the checkpoint resumed
    from) go to ``tracker.record_timings``. Returns all of them. Raises UserError on missing or
    unreadable inputs and on data with nothing to train on.
    """
    from transformers import AutoTokenizer

    from pipelines.llm.model_dir import check_model_dir

    check_model_dir(base)
    attention(params)  # an attention kernel that cannot run here fails before the data is encoded
    sources = data if isinstance(data, list) else [DataSource(path=data)]
    if not sources:
        raise UserError("sft: the data folder holds no *.jsonl, *.parquet or *.arrow file")
    for source in sources:
        if source.path is not None and not source.path.exists():
            raise UserError(f"{source.path}: training data not found; run `dvc repro curate` first")
    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
    except (OSError, ValueError) as exc:  # e.g. a config.json cut off mid-write
        raise UserError(f"{base}: cannot load the model directory: {str(exc).splitlines()[0]}") from None
    samples, dropped = load_training_set(sources, tokenizer, params.max_length, max_samples)
    single_file = len(sources) == 1 and sources[0].path is not None
    prepare_checkpoints(checkpoints, run_signature(sources[0].path if single_file else digest(sources), base, params))
    log.info("training on %d samples (%d tokens) x %d, %d dropped for length, method %s", len(samples),
             sum(len(s["input_ids"]) for s in samples), params.repeat, len(dropped), params.method)
    samples = samples * params.repeat  # LIMI's duplication: every sample `repeat` times an epoch, shuffled
    metrics = train(samples, base, out, params, checkpoints=checkpoints, plots=plots, tracker=tracker)
    metrics["dropped_for_length"] = len(dropped)
    reproducible = {k: v for k, v in metrics.items() if k not in RUN_FACTS}
    if metrics_file is not None:
        atomic_write_json(metrics_file, reproducible)
    if tracker is not None:
        tracker.log_metrics({k: v for k, v in reproducible.items() if isinstance(v, (int, float))})
        tracker.record_timings({k: metrics[k] for k in RUN_FACTS})
        log_outputs(tracker, sources, out, plots)
    shutil.rmtree(checkpoints, ignore_errors=True)  # finished: checkpoints only serve a resume
    return metrics


def log_outputs(tracker, sources: list[DataSource], out: Path, plots: Path | None) -> None:
    """Record the training data as the run's input (local files; a hub id has none to hash), and the adapter
    files and loss plot as its artifacts."""
    for source in sources:
        if source.path is not None:
            tracker.log_dataset(source.path, context="training")
    for name in ("adapter_config.json", "adapter_model.safetensors", "sft_info.json"):
        if (out / name).exists():
            tracker.log_artifact(out / name, artifact_path="adapter")
    if plots is not None and (plots / "loss.png").exists():
        tracker.log_artifact(plots / "loss.png", artifact_path="plots")
