"""The sweep record: what a sweep planned, queued and where it records, kept under ``.dvc/tmp/sweeps``.

A record is a JSON object: ``id`` (``sweep-YYYYmmdd-HHMMSS``), ``baseline_rev`` (the commit the
experiments branch from), ``tracking_uri``, ``experiment_id`` and ``run_id`` (the sweep's MLflow run),
``main_metric``, ``sizes``, ``seeds``, ``subsets``, ``baseline``, ``measures`` (``metric`` or
``suite:metric``, what ``report`` tabulates and draws), ``available`` (curate-eligible
trajectories per subset), ``notes``, and ``points``: one entry per experiment (``name``,
``teachers``, ``size``, ``seed``, ``with_baseline``, ``run_id``, and ``status`` once it ended).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines.core.errors import UserError
from pipelines.core.io import atomic_write_json

SWEEPS = Path(".dvc") / "tmp" / "sweeps"  # sweep records; tracking.SWEEP_POINTS holds the per-experiment notes
DONE = {"Success", "Failed"}  # the states of an experiment that ended (dvc queue status)
WAITING = {"Queued", "Running"}  # the states of one that has not (dvc exp show gives it its parent's files)


def save_record(root: Path, record: dict[str, Any]) -> None:
    """Write ``record`` to ``.dvc/tmp/sweeps/<id>.json`` (atomically: a reader sees it whole or not at all)."""
    atomic_write_json(root / SWEEPS / f"{record['id']}.json", record)


def load_record(root: Path, sweep_id: str | None = None) -> dict[str, Any]:
    """The record of sweep ``sweep_id``, or of the latest sweep; UserError when there is none."""
    folder = root / SWEEPS
    if sweep_id:
        path = folder / f"{sweep_id}.json"
        if not path.exists():
            raise UserError(f"no sweep {sweep_id!r} in {folder}")
    else:
        found = sorted(folder.glob("sweep-*.json"))
        if not found:
            raise UserError(f"no sweep recorded in {folder}; run `python -m pipelines.tools.sweep` first")
        path = found[-1]  # ids are timestamps
    return json.loads(path.read_text(encoding="utf-8"))
