"""Trainer checkpoints: resumed when the run is the same (data, base, params), wiped otherwise."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from pipelines.core.params import params_hash
from pipelines.training.config import SFTParams


def complete(checkpoint: Path) -> bool:
    """Whether the Trainer finished writing ``checkpoint``: it writes ``trainer_state.json`` last, so a
    kill part-way through a save leaves a folder without a readable one."""
    try:
        json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def last_checkpoint(directory: Path) -> Path | None:
    """The complete ``checkpoint-<step>`` folder with the highest step in ``directory``, or None."""
    found = sorted(directory.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])) if directory.exists() else []
    done = [p for p in found if complete(p)]
    return done[-1] if done else None


def run_signature(data: Path | str, base: Path, params: SFTParams) -> str:
    """What a checkpoint must match to be resumed: the data (a file, or a digest of the sources), the base
    weights' config, the params."""
    digest = hashlib.sha256(data.read_bytes()).hexdigest() if isinstance(data, Path) else data
    base_id = (base / "config.json").read_text() if (base / "config.json").exists() else str(base)
    return params_hash({"data": digest, "base": base_id, "params": params.model_dump(mode="json")})


def prepare_checkpoints(directory: Path, signature: str) -> None:
    """Keep checkpoints of the same run (resume); wipe those of another run."""
    marker = directory / "run_signature"
    if directory.exists() and (not marker.exists() or marker.read_text() != signature):
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    marker.write_text(signature)
