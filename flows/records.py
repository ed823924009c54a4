"""What a flow run leaves behind: the MLflow parent run and the Prefect artifacts.

The parent run is the pipeline's entry in MLflow: stage runs nest under it (``LIMI_PARENT_RUN_ID``),
it carries ``stage.<name>`` = ran | skipped | restored | failed and the summary metrics copied from the
stages' metrics files. Like ``pipelines.core.tracking``, tracking is a record, not the work: if MLflow cannot
be reached the flow still runs its stages and logs one warning.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from pipelines.core import tracking
from pipelines.core.schema import EvalMetrics

log = logging.getLogger(__name__)

# (metrics file, MLflow prefix, keys to copy or None for every top-level number)
SUMMARY_METRICS: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    ("metrics/curate.json", "curate.", None),
    ("metrics/sft.json", "sft.", ("final_loss",)),
    ("reports/runs/sft.json", "sft.", ("tokens_per_s",)),  # a timing: in the uncached run report, not the metrics
    ("metrics/eval.json", "eval.", None),
)
EVAL_METRICS = "metrics/eval.json"
MAX_COUNTS_PER_FILE = 16


@dataclass
class StageRecord:
    """One stage in one flow run: ``status`` is ran | skipped | restored | failed."""

    stage: str
    status: str
    seconds: float = 0.0
    attempts: int = 1
    error: str | None = None


@contextmanager
def project_root(root: Path) -> Iterator[None]:
    """Resolve ``pipelines.core.paths.repo_root()`` (the default tracking store, artifact location) to ``root``."""
    before = os.environ.get("LIMI_ROOT")
    os.environ["LIMI_ROOT"] = str(root)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("LIMI_ROOT", None)
        else:
            os.environ["LIMI_ROOT"] = before


class ParentRun:
    """The pipeline's MLflow parent run, written through an explicit client (no global active run)."""

    def __init__(self, client: Any, run_id: str, experiment_id: str, experiment_name: str, uri: str):
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.experiment_name = experiment_name
        self.uri = uri
        self.active = True

    @classmethod
    def open(cls, root: Path, tags: dict[str, str]) -> "ParentRun | None":
        """Start run ``pipeline`` in the project's experiment; None (and a warning) if MLflow is unreachable."""
        try:
            from mlflow import MlflowClient

            with project_root(root):
                uri = tracking.configure()
                experiment_id = tracking.ensure_experiment()
                client = MlflowClient(tracking_uri=uri)
                name = client.get_experiment(experiment_id).name
                run = client.create_run(experiment_id, run_name="pipeline",
                                        tags={**tracking.git_identity(root), **tags})
        except Exception as exc:  # the record must never cost the pipeline its run
            log.warning("MLflow tracking at %s is unavailable (%s); stages run without a parent run",
                        tracking.scrub(tracking.tracking_uri()), _first_line(exc))
            return None
        return cls(client, run.info.run_id, experiment_id, name, uri)

    def _guard(self, what: str, fn, *args, **kwargs) -> None:
        if not self.active:
            return
        try:
            fn(*args, **kwargs)
        except Exception as exc:
            self.active = False
            log.warning("MLflow %s failed (%s); the parent run is not fully recorded", what, _first_line(exc))

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, tracking.scrub(str(v))[:5000]) for k, v in tags.items()]
        self._guard("set_tags", self.client.log_batch, self.run_id, tags=items)

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, tracking.scrub(str(v))[:6000]) for k, v in params.items()]
        self._guard("log_params", self.client.log_batch, self.run_id, params=items)

    def log_metrics(self, metrics: dict[str, float]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        if items:
            self._guard("log_metrics", self.client.log_batch, self.run_id, metrics=items)

    def finish(self, status: str) -> None:
        """End the run: FINISHED, FAILED or KILLED."""
        self._guard("end_run", self.client.set_terminated, self.run_id, status=status)

    def ui_url(self) -> str | None:
        """The run's page when the tracking store is an MLflow server, else None."""
        from urllib.parse import urlsplit, urlunsplit

        url = urlsplit(self.uri)
        if url.scheme not in ("http", "https"):
            return None
        base = urlunsplit((url.scheme, url.hostname + (f":{url.port}" if url.port else ""), url.path.rstrip("/"),
                           "", ""))  # no user:password in a link anyone may see
        return f"{base}/#/experiments/{self.experiment_id}/runs/{self.run_id}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return tracking.scrub(text.splitlines()[0] if text else type(exc).__name__)


# ---------------------------------------------------------------------------------- reading results
def read_json(root: Path, rel: str, rev: str | None = None) -> Any:
    """``rel`` parsed from the workspace, or from git revision ``rev`` through DVC; None if absent or invalid."""
    try:
        if rev is None:
            return json.loads((root / rel).read_text(encoding="utf-8"))
        import dvc.api

        return json.loads(dvc.api.read(rel, repo=str(root), rev=rev))
    except Exception:  # a summary we cannot read is a missing line, not a failed flow
        return None


def numbers(data: Any, depth: int = 1, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a JSON object down to ``depth`` levels of nesting, keyed by dotted path."""
    out: dict[str, float] = {}
    if not isinstance(data, dict):
        return out
    for key, value in data.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out[f"{prefix}{key}"] = value
        elif isinstance(value, dict) and depth > 0:
            out.update(numbers(value, depth - 1, f"{prefix}{key}."))
    return out


def summary_metrics(root: Path, rev: str | None = None) -> dict[str, float]:
    """The headline values copied onto the parent run, from the metrics files that exist."""
    metrics: dict[str, float] = {}
    for rel, prefix, keys in SUMMARY_METRICS:
        data = read_json(root, rel, rev)
        if not isinstance(data, dict):
            continue
        values = numbers(data, depth=0)
        if keys is not None:
            values = {k: v for k, v in values.items() if k in keys}
        metrics.update({prefix + k: v for k, v in values.items()})
        if rel == EVAL_METRICS:
            for row in eval_rows(data):
                model = row["model"]
                metrics.update({f"{prefix}{model}.{k}": v for k, v in row.items() if k != "model"})
    return metrics


def eval_rows(data: Any) -> list[dict[str, Any]]:
    """One table row per evaluated model of ``metrics/eval.json``: ``{"model": name, metric: value, ...}``, the
    numbers of the model's overall block; no rows for a missing file or one that is not an :class:`EvalMetrics`."""
    if data is None:
        return []
    try:
        metrics = EvalMetrics.model_validate(data)
    except ValidationError:
        log.warning("%s is not an eval metrics file; no eval table", EVAL_METRICS)
        return []
    return [{"model": name, **numbers(block.overall.model_dump(exclude_unset=True), depth=0)}
            for name, block in metrics.models.items()]


# ------------------------------------------------------------------------------------ prefect artifacts
def artifact_key(name: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-") or "stage"


def stage_markdown(record: StageRecord, counts: dict[str, dict[str, float]]) -> str:
    """The stage's artifact: what happened, how long it took, and the counts from its reports."""
    verb = {"ran": "ran", "skipped": "skipped by DVC (nothing it depends on changed)",
            "restored": "restored from DVC's run cache (same inputs ran before)", "failed": "FAILED"}
    lines = [f"## {record.stage}", "", f"**{verb.get(record.status, record.status)}** in {record.seconds:.1f} s"
             + (f" after {record.attempts} attempts" if record.attempts > 1 else "")]
    if record.error:
        lines += ["", "```", record.error[-3000:], "```"]
    for rel, values in counts.items():
        lines += ["", f"`{rel}`", "", "| key | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def stage_counts(root: Path, files: tuple[str, ...], rev: str | None = None) -> dict[str, dict[str, float]]:
    """Top-level (and one level nested) numbers from each summary file that exists."""
    counts = {}
    for rel in files:
        values = numbers(read_json(root, rel, rev), depth=1)
        if values:
            counts[rel] = dict(list(values.items())[:MAX_COUNTS_PER_FILE])
    return counts


def _fmt(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def publish_stage(record: StageRecord, root: Path, files: tuple[str, ...], rev: str | None = None) -> None:
    """A markdown artifact keyed ``stage-<name>``, so the UI shows each stage's history."""
    from prefect.artifacts import create_markdown_artifact

    counts = stage_counts(root, files, rev) if record.status != "failed" else {}
    create_markdown_artifact(key=f"stage-{artifact_key(record.stage)}", markdown=stage_markdown(record, counts),
                             description=f"{record.stage}: {record.status}")


def publish_mlflow_link(parent: ParentRun | None) -> None:
    """A link artifact to the parent run on an MLflow server; for a local store, a note saying where it is."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact

    if parent is None:
        create_markdown_artifact(key="mlflow-run", markdown="MLflow was unreachable: this run has no parent run.\n",
                                 description="MLflow parent run")
        return
    url = parent.ui_url()
    if url:
        create_link_artifact(key="mlflow-run", link=url, link_text=f"MLflow run {parent.run_id}",
                             description="MLflow parent run of this flow run")
        return
    local = (f"MLflow run `{parent.run_id}` (experiment `{parent.experiment_name}`, id {parent.experiment_id}) "
             f"is in the local store `{tracking.scrub(parent.uri)}`.\n\nOpen it with `make ui`, then "
             f"http://127.0.0.1:5000/#/experiments/{parent.experiment_id}/runs/{parent.run_id}\n")
    create_markdown_artifact(key="mlflow-run", markdown=local, description="MLflow parent run (local store)")


def publish_eval_table(root: Path, rev: str | None = None) -> bool:
    """A table artifact from metrics/eval.json, when it exists; True if one was made."""
    from prefect.artifacts import create_table_artifact

    rows = eval_rows(read_json(root, EVAL_METRICS, rev))
    if not rows:
        return False
    columns = list(dict.fromkeys(k for row in rows for k in row))
    table = [{c: row.get(c) for c in columns} for row in rows]
    create_table_artifact(key="eval-metrics", table=table, description="eval: base vs fine-tuned (metrics/eval.json)")
    return True
