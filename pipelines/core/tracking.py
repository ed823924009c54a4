"""One MLflow run per stage execution, with the identity tags that make two runs comparable.

Usage in a stage::

    with stage_run("base_model", params.group("base_model")) as run:
        ...                      # the stage's work
        run.log_metrics({"params_m": 134.5})

Defaults: tracking at ``sqlite:///<repo>/mlflow.db`` and artifacts under ``<repo>/mlartifacts``
(``MLFLOW_TRACKING_URI`` / ``MLFLOW_EXPERIMENT_NAME`` override). ``LIMI_PARENT_RUN_ID`` nests the
run under an orchestrator's parent run, across processes. Tags: ``git.commit``, ``git.dirty``,
``params_hash``, ``dvc.dep.<path>`` / ``dvc.out.<path>`` (DVC's md5 of each dependency and output,
computed when the stage ends, i.e. what ``dvc.lock`` records), ``prefect.flow_run_id``.

In a sweep (``python -m pipelines.tools.sweep``) each queued DVC experiment has a note under the queuing
project's ``.dvc/tmp/sweeps/points/`` naming its MLflow parent run and the sweep's tags; a stage that
DVC runs for that experiment (DVC sets ``DVC_EXP_NAME`` and ``DVC_ROOT``) nests under that run and
carries those tags, and records to the queuing project's store.

Tracking is a record, not the work: if the tracking server cannot be reached, the stage still
completes its outputs and prints one warning saying the run was not recorded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

import yaml

from pipelines.core.params import params_hash
from pipelines.core.paths import repo_root

log = logging.getLogger(__name__)
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.I)
DEFAULT_EXPERIMENT = "limi-pipeline"
PARENT_ENV = "LIMI_PARENT_RUN_ID"
RUN_REPORTS = Path("reports") / "runs"  # uncached: timings and host facts of the last run of each stage
SWEEP_POINTS = Path(".dvc") / "tmp" / "sweeps" / "points"  # under the project that queued the experiments


def secret_values() -> list[str]:
    """Values of environment variables whose names look secret (KEY, TOKEN, SECRET, ...)."""
    return sorted({v for k, v in os.environ.items() if SECRET_NAME.search(k) and len(v) >= 6}, key=len, reverse=True)


def scrub(text: str, secrets: list[str] | None = None) -> str:
    """Replace every secret value found in ``text`` with ``***``."""
    for value in secrets if secrets is not None else secret_values():
        text = text.replace(value, "***")
    return text


def tracking_uri() -> str:
    """The configured tracking URI, defaulting to the repo's SQLite file (not the cwd's)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def configure() -> str:
    """Point MLflow at the project's store with short network retries; return the URI."""
    # Fail fast on an unreachable server instead of MLflow's multi-minute default back-off.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    return uri


def ensure_experiment(name: str | None = None) -> str:
    """The experiment id for ``name`` (created with artifacts under the repo when local)."""
    import mlflow

    name = name or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if tracking_uri().startswith("sqlite:"):
        location = (repo_root() / "mlartifacts").as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def git_identity(root: Path | None = None) -> dict[str, str]:
    """``git.commit`` and ``git.dirty`` (tracked changes other than dvc.lock, which repro itself writes)."""
    root = root or repo_root()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return {"git.commit": "unknown", "git.dirty": "unknown"}
    dirty = [line for line in status if not line[3:].strip().endswith("dvc.lock")]
    return {"git.commit": commit, "git.dirty": str(bool(dirty)).lower()}


def stage_paths(stage: str, root: Path | None = None) -> tuple[list[str], list[str]]:
    """The dependency and output paths ``dvc.yaml`` declares for ``stage`` (empty if none)."""
    root = root or repo_root()
    try:
        spec = yaml.safe_load((root / "dvc.yaml").read_text()) or {}
    except FileNotFoundError:
        return [], []
    body = (spec.get("stages") or {}).get(stage) or {}

    def names(items: Any) -> list[str]:
        return [next(iter(i)) if isinstance(i, dict) else str(i) for i in items or []]

    return names(body.get("deps")), names(body.get("outs")) + names(body.get("metrics")) + names(body.get("plots"))


def dvc_md5(path: Path) -> str | None:
    """DVC's own hash of a file or directory (``<md5>.dir`` for directories), or None if absent."""
    if not path.exists():
        return None
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem
    from dvc_objects.fs.memory import MemoryFileSystem

    odb = HashFileDB(MemoryFileSystem(), "/staging")
    _, _, obj = build(odb, str(path), LocalFileSystem(), "md5", dry_run=True)
    return obj.hash_info.value


def sweep_point() -> dict[str, Any] | None:
    """The sweep note of the DVC experiment this process runs in, or None outside a sweep.

    DVC gives a queued experiment's stages ``DVC_EXP_NAME`` and ``DVC_ROOT`` (the project it was queued
    from, not the temporary copy it runs in); the sweep leaves ``<DVC_ROOT>/.dvc/tmp/sweeps/points/<name>.json``
    with ``parent_run_id``, ``experiment``, ``tracking_uri`` and ``tags``.
    """
    name, root = os.environ.get("DVC_EXP_NAME"), os.environ.get("DVC_ROOT")
    if not name or not root:
        return None
    try:
        note = json.loads((Path(root) / SWEEP_POINTS / f"{name}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return note if isinstance(note, dict) else None


class StageRun:
    """Handle a stage logs through; every call is a no-op once tracking has failed."""

    def __init__(self, stage: str):
        self.stage = stage
        self.run_id: str | None = None
        self.experiment_id: str | None = None  # the run's experiment: episode traces go there too
        self.active = False
        self._secrets = secret_values()

    def _guard(self, what: str, fn, *args, **kwargs) -> Any:
        if not self.active:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # tracking must never cost the stage its work
            self.active = False
            log.warning("MLflow %s failed (%s); the stage goes on but this run is not fully recorded", what,
                        scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, self._secrets))
            return None

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import mlflow

        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self._guard("log_metrics", mlflow.log_metrics, clean, step=step)

    def set_tags(self, tags: dict[str, Any]) -> None:
        import mlflow

        self._guard("set_tags", mlflow.set_tags, {k: scrub(str(v), self._secrets)[:5000] for k, v in tags.items()})

    def log_params(self, params: dict[str, Any]) -> None:
        import mlflow

        flat = {k: scrub(json.dumps(v) if isinstance(v, (dict, list)) else str(v), self._secrets)[:6000]
                for k, v in _flatten(params).items()}
        self._guard("log_params", mlflow.log_params, flat)

    def log_dict(self, data: Any, artifact_file: str) -> None:
        import mlflow

        text = scrub(json.dumps(data, indent=2, default=str), self._secrets)
        self._guard("log_dict", mlflow.log_text, text, artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Log a file; text files are scrubbed of secrets on the way."""
        import mlflow

        path = Path(path)
        if path.suffix in {".json", ".jsonl", ".md", ".txt", ".csv", ".yaml", ".log"}:
            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / path.name
                copy.write_text(scrub(path.read_text(encoding="utf-8", errors="replace"), self._secrets))
                self._guard("log_artifact", mlflow.log_artifact, str(copy), artifact_path)
        else:
            self._guard("log_artifact", mlflow.log_artifact, str(path), artifact_path)

    def record_timings(self, figures: dict[str, Any], root: Path | None = None) -> Path:
        """Keep run-dependent figures (seconds, tokens/s, peak memory, host facts) out of DVC's outputs.

        They go to MLflow as metrics (numbers) and to ``reports/runs/<stage>.json``, a git-ignored
        report that no stage declares, so every DVC-tracked output stays a function of its inputs.
        Returns the report's path.
        """
        from pipelines.core.io import atomic_write_json

        self.log_metrics({k: v for k, v in _flatten(figures).items()})
        path = (root or repo_root()) / RUN_REPORTS / f"{self.stage}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, figures)
        return path

    def log_dataset(self, path: str | Path, context: str) -> None:
        """Record a dataset file as a run input, with DVC's md5 as its digest."""
        import mlflow
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.data.http_dataset_source import HTTPDatasetSource

        path = Path(path)
        digest = dvc_md5(path) or "missing"
        source = HTTPDatasetSource(url=path.resolve().as_uri())
        dataset = MetaDataset(source=source, name=str(path), digest=digest[:36])
        self._guard("log_input", mlflow.log_input, dataset, context=context)


@contextlib.contextmanager
def stage_run(stage: str, params: dict[str, Any], *, tags: dict[str, Any] | None = None,
              root: Path | None = None) -> Iterator[StageRun]:
    """Wrap a stage's work in one MLflow run; FAILED if the body raises, FINISHED otherwise."""
    import mlflow

    root = root or repo_root()
    handle = StageRun(stage)
    point = sweep_point()
    if point and point.get("tracking_uri") and not os.environ.get("MLFLOW_TRACKING_URI"):
        os.environ["MLFLOW_TRACKING_URI"] = point["tracking_uri"]  # not the temporary copy's own mlflow.db
    try:
        configure()
        experiment_id = ensure_experiment(point.get("experiment") if point else None)
        parent = os.environ.get(PARENT_ENV) or (point or {}).get("parent_run_id") or None
        run = mlflow.start_run(experiment_id=experiment_id, run_name=stage, parent_run_id=parent,
                               tags={"stage": stage})
        handle.run_id = run.info.run_id
        handle.experiment_id = experiment_id
        handle.active = True
    except Exception as exc:
        log.warning("MLflow tracking at %s is unavailable (%s); the stage runs without a record",
                    scrub(tracking_uri()), scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
    identity = {**git_identity(root), "params_hash": params_hash(params), **(tags or {})}
    if point:
        identity.update({**point.get("tags", {}), "dvc.experiment": os.environ["DVC_EXP_NAME"]})
    flow_run = os.environ.get("LIMI_PREFECT_FLOW_RUN_ID") or os.environ.get("PREFECT__FLOW_RUN_ID")
    if flow_run:
        identity["prefect.flow_run_id"] = flow_run
    handle.set_tags(identity)
    handle.log_params(params)
    try:
        yield handle
    except BaseException:
        handle._guard("end_run", mlflow.end_run, status="FAILED")
        raise
    deps, outs = stage_paths(stage, root)
    hashes = {}
    for kind, paths in (("dep", deps), ("out", outs)):
        for rel in paths:
            try:
                value = dvc_md5(root / rel)
            except Exception as exc:  # a hash we cannot compute is a missing tag, not a failed stage
                log.debug("cannot hash %s: %s", rel, exc)
                value = None
            if value:
                hashes[f"dvc.{kind}.{rel}"] = value
    handle.set_tags(hashes)
    handle._guard("end_run", mlflow.end_run, status="FINISHED")


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): data}
