"""Whether a folder is a usable Hugging Face model directory, without loading torch or the engine."""

from __future__ import annotations

from pathlib import Path

from pipelines.core.errors import ModelError


def check_model_dir(path: Path) -> None:
    """Fail with one clear line if ``path`` is not a usable Hugging Face model directory."""
    if not path.is_dir():
        raise ModelError(f"{path}: model directory not found; run `dvc repro base_model` or fix the model path in params.yaml")
    if not (path / "config.json").exists():
        raise ModelError(f"{path}: no config.json; not a Hugging Face model directory")
    if not any((path / f).exists() for f in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        raise ModelError(f"{path}: no tokenizer files (tokenizer.json); save the tokenizer into the model directory")
