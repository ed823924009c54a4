"""The sweep's results: each experiment's params and metrics, as ``dvc exp show --json`` lists them; its
``metrics/eval.json`` read as :class:`~pipelines.core.schema.EvalMetrics`.

Besides the scores, a row carries what the eval says about their uncertainty: the 95% interval of the tuned
model's main metric (``interval``) and the paired comparison of the tuned model against the untuned baseline
(``paired``: ``delta``, ``interval``, ``significant``, ``tasks``), which only an experiment that evaluated the
baseline has; ``measures`` holds the same per measure of the sweep (:mod:`pipelines.tools.sweep.measures`).
An eval.json written before intervals existed still reads; those fields are then None."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pipelines.core.dvc import dvc_command
from pipelines.core.errors import UserError, first_error
from pipelines.core.schema import EvalMetrics
from pipelines.tools.sweep.measures import Measure, as_interval, measure_values, paired_entry, record_measures
from pipelines.tools.sweep.record import WAITING

EVAL_JSON = "metrics/eval.json"


def experiment_data(root: Path, baseline_rev: str | None) -> dict[str, dict[str, Any]]:
    """Experiment name -> its ``data`` block (params, metrics) from ``dvc exp show --json``."""
    args = ["exp", "show", "--json"] + (["--rev", baseline_rev] if baseline_rev else [])
    result = dvc_command(args, root, check=False, timeout=900)
    if result.returncode != 0:  # e.g. the baseline commit is gone: look everywhere
        result = dvc_command(["exp", "show", "--json", "--all-commits"], root, timeout=900)
    out: dict[str, dict[str, Any]] = {}
    for entry in json.loads(result.stdout or "[]"):
        for exp in entry.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state")  # queued | running | success | failed; None: done
            for rev in exp.get("revs") or []:
                if rev.get("name") and rev.get("data"):
                    out[rev["name"]] = {**rev["data"], "state": state}
                    full = cached_eval_json(root, rev.get("rev"))
                    if full is not None:  # the whole file: `dvc exp show` keeps scalars only (no intervals)
                        out[rev["name"]].setdefault("metrics", {})[EVAL_JSON] = {"data": full}
    return out


def cached_eval_json(root: Path, rev: str | None) -> dict[str, Any] | None:
    """The whole ``metrics/eval.json`` of experiment commit ``rev``, read from the DVC cache by the md5 its
    ``dvc.lock`` records; None when the commit, the entry or the cached file is not there.

    Why: ``dvc exp show --json`` drops every list from a metrics file, so the eval's 95% intervals
    (``[lo, hi]``) never reach the sweep through it; the cached file has them."""
    if not rev:
        return None
    lock = subprocess.run(["git", "show", f"{rev}:dvc.lock"], cwd=root, capture_output=True, text=True)
    if lock.returncode != 0:
        return None
    md5 = None
    for stage in (yaml.safe_load(lock.stdout) or {}).get("stages", {}).values():
        for out in stage.get("outs") or []:
            if out.get("path") == EVAL_JSON:
                md5 = out.get("md5")
    cache = _cache_dir(root)
    path = cache / "files" / "md5" / md5[:2] / md5[2:] if md5 and cache else None
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


_CACHE_DIRS: dict[Path, Path | None] = {}


def _cache_dir(root: Path) -> Path | None:
    """The project's DVC cache folder (``dvc cache dir``), asked once per root."""
    if root not in _CACHE_DIRS:
        result = dvc_command(["cache", "dir"], root, check=False, timeout=120)
        _CACHE_DIRS[root] = Path(result.stdout.strip()) if result.returncode == 0 and result.stdout.strip() else None
    return _CACHE_DIRS[root]


def _file_data(data: dict[str, Any], kind: str, path: str) -> dict[str, Any]:
    block = (data.get(kind) or {}).get(path) or {}  # dvc's own listing: a file it could not read has no "data"
    return block.get("data") or {}


def eval_metrics(name: str, data: dict[str, Any]) -> EvalMetrics | None:
    """Experiment ``name``'s ``metrics/eval.json`` (from its ``dvc exp show`` ``data``), validated; None when it
    has none yet. A file that is not an :class:`EvalMetrics` is a UserError naming the experiment and field."""
    raw = _file_data(data, "metrics", EVAL_JSON)
    if not raw:
        return None
    try:
        return EvalMetrics.model_validate(raw)
    except ValidationError as exc:
        where, msg = first_error(exc, whole="(file)")
        raise UserError(f"experiment {name}: {EVAL_JSON} field {where}: {msg}") from None


def _paired(ev: EvalMetrics, tuned: str | None, base: str | None, metric: str) -> dict[str, Any] | None:
    """``comparisons[tuned][metric]`` of the eval when it compared ``tuned`` with the untuned ``base``; None
    otherwise (no baseline in this experiment, or an eval.json from before paired intervals)."""
    if not tuned or not base:
        return None
    return paired_entry((ev.comparisons.get(tuned) or {}).get(metric))


def _eval_columns(ev: EvalMetrics | None, tuned: list[str], metric: str,
                  measures: list[Measure] = ()) -> dict[str, Any]:
    """A row's eval numbers: ``metric`` of the first tuned model and of the untuned baseline (when it is not a
    tuned one) with their 95% intervals, the paired comparison of the two, and the protocol's sizes; all None
    without an eval result. ``measures``: the same per measure (:func:`~pipelines.tools.sweep.measures.
    measure_values`), by key."""
    first = tuned[0] if tuned else None
    if ev is None:
        return dict(score=None, interval=None, tuned=first, base_name=None, base_score=None, base_interval=None,
                    paired=None, confidence=None, resamples=None, tasks=None, trials=None, k=None, rounds=None,
                    suites=[], measures={})
    base = ev.baseline if ev.baseline and ev.baseline not in tuned else None
    extra = ev.model_extra or {}
    return dict(score=ev.headline.get(first, {}).get(metric) if first else None,
                interval=as_interval((ev.intervals.get(first) or {}).get(metric)) if first else None,
                tuned=first, base_name=base, base_score=ev.headline.get(base, {}).get(metric) if base else None,
                base_interval=as_interval((ev.intervals.get(base) or {}).get(metric)) if base else None,
                paired=_paired(ev, first, base, metric), confidence=extra.get("confidence"),
                resamples=extra.get("bootstrap_resamples"), tasks=ev.tasks, trials=ev.trials, k=ev.k, rounds=ev.R,
                suites=sorted(ev.suites),
                measures={m.key: measure_values(ev, m, first, base) for m in measures})


def point_rows(record: dict[str, Any], exps: dict[str, dict[str, Any]],
               measures: list[Measure] | None = None) -> list[dict[str, Any]]:
    """One row per point: its variables, status and the numbers the report needs; ``measures``: those the
    record names when None."""
    rows = []
    metric = record["main_metric"]
    measures = record_measures(record) if measures is None else measures
    for p in record["points"]:
        data = exps.get(p["name"])
        row = {k: p[k] for k in ("name", "teachers", "size", "seed")}
        state = (data or {}).get("state")
        row.update(status=p.get("status") or (state.capitalize() if state else "no result yet"),
                   run_id=p.get("run_id"))
        if row["status"] in WAITING:
            data = None  # its parent commit's files, not its results
        if data:
            ev = eval_metrics(p["name"], data)
            sft = _file_data(data, "metrics", "metrics/sft.json")
            cur = _file_data(data, "metrics", "metrics/curate.json")
            params = _file_data(data, "params", "params.yaml")
            tuned = [m["name"] for m in (params.get("eval") or {}).get("models", []) if m.get("adapter")]
            row.update(_eval_columns(ev, tuned, metric, measures), kept=cur.get("kept"),
                       final_loss=sft.get("final_loss"), train_tokens=sft.get("train_tokens"), params=params)
            row["status"] = "Success" if ev is not None and state in (None, "success") else row["status"]
        rows.append(row)
    return rows
