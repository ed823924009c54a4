"""MLflow runs that a tool opens, fills and closes from outside the runs' own processes.

A sweep (``python -m pipelines.tools.sweep``) opens a parent run and one child run per queued DVC
experiment; the stage runs of each experiment nest under its child run (see
:func:`pipelines.core.tracking.sweep_point`), and the report's numbers and files are logged to the
runs afterwards, possibly by another process. :class:`RunStore` names the store and experiment by
URI and id, so any process can reopen them. A stage logs its own run with
:func:`pipelines.core.tracking.stage_run` instead.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from pipelines.core import tracking

TEXT_SUFFIXES = {".json", ".jsonl", ".md", ".txt", ".csv", ".yaml", ".log"}  # scrubbed of secrets when logged


@contextlib.contextmanager
def _project(root: Path) -> Iterator[None]:
    """Resolve the project's defaults (tracking URI, artifact location) against ``root`` while inside."""
    saved = os.environ.get("LIMI_ROOT")
    os.environ["LIMI_ROOT"] = str(root)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("LIMI_ROOT", None)
        else:
            os.environ["LIMI_ROOT"] = saved


@dataclass(frozen=True)
class RunStore:
    """One MLflow experiment in one tracking store."""

    uri: str
    experiment_id: str

    @classmethod
    def open(cls, root: Path) -> RunStore:
        """The store and experiment the stages of the project at ``root`` record to (created if needed)."""
        with _project(root):
            uri = tracking.configure()
            return cls(uri, tracking.ensure_experiment())

    @functools.cached_property
    def _client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(self.uri)

    @property
    def experiment_name(self) -> str:
        return self._client.get_experiment(self.experiment_id).name

    def create_run(self, name: str, *, tags: dict[str, str], params: dict[str, Any],
                   parent_run_id: str | None = None) -> str:
        """A new run named ``name`` (running until :meth:`terminate`), with ``tags`` and ``params`` (as strings),
        nested under ``parent_run_id`` if given. Returns its id."""
        if parent_run_id:
            tags = {**tags, "mlflow.parentRunId": parent_run_id}
        run = self._client.create_run(self.experiment_id, run_name=name, tags=tags)
        for key, value in params.items():
            self._client.log_param(run.info.run_id, key, str(value))
        return run.info.run_id

    def is_running(self, run_id: str) -> bool:
        return self._client.get_run(run_id).info.status == "RUNNING"

    def terminate(self, run_id: str, ok: bool) -> None:
        """End the run as FINISHED (``ok``) or FAILED."""
        self._client.set_terminated(run_id, "FINISHED" if ok else "FAILED")

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self._client.set_tag(run_id, key, value)

    def log_metrics(self, run_id: str, metrics: dict[str, Any]) -> None:
        """Log the numeric values of ``metrics``; None and other values are left out."""
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self._client.log_metric(run_id, key, float(value))

    def log_files(self, run_id: str, paths: list[Path]) -> None:
        """Log files as artifacts under their own names; text files are scrubbed of secrets on the way."""
        with tempfile.TemporaryDirectory() as tmp:
            for path in paths:
                if path.suffix in TEXT_SUFFIXES:
                    copy = Path(tmp) / path.name
                    copy.write_text(tracking.scrub(path.read_text(encoding="utf-8", errors="replace")))
                    path = copy
                self._client.log_artifact(run_id, str(path))

    def seconds_to_last_end(self, run_id: str, tag: str, value: str, skip_stages: tuple[str, ...] = ()) -> float | None:
        """Seconds from the start of ``run_id`` to the latest end of the runs tagged ``tag`` = ``value``
        (those whose ``stage`` tag is in ``skip_stages`` aside); None when none has ended."""
        start = self._client.get_run(run_id).info.start_time
        runs = self._client.search_runs([self.experiment_id], f"tags.`{tag}` = '{value}'", max_results=1000)
        ends = [r.info.end_time for r in runs if r.info.end_time and r.data.tags.get("stage") not in skip_stages]
        return (max(ends) - start) / 1000.0 if ends and start else None
