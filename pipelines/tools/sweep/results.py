"""The sweep's results: each experiment's params and metrics, as ``dvc exp show --json`` lists them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines.core.dvc import dvc_command


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
    return out


def _file_data(data: dict[str, Any], kind: str, path: str) -> dict[str, Any]:
    block = (data.get(kind) or {}).get(path) or {}
    return block.get("data") or {}


def point_rows(record: dict[str, Any], exps: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per point: its variables, status and the numbers the report needs."""
    rows = []
    metric = record["main_metric"]
    for p in record["points"]:
        data = exps.get(p["name"])
        row = {k: p[k] for k in ("name", "teachers", "size", "seed")}
        state = (data or {}).get("state")
        row.update(status=p.get("status") or (state.capitalize() if state else "no result yet"),
                   run_id=p.get("run_id"))
        if data:
            ev = _file_data(data, "metrics", "metrics/eval.json")
            sft = _file_data(data, "metrics", "metrics/sft.json")
            cur = _file_data(data, "metrics", "metrics/curate.json")
            params = _file_data(data, "params", "params.yaml")
            tuned = [m["name"] for m in (params.get("eval") or {}).get("models", []) if m.get("adapter")]
            baseline = ev.get("baseline")
            headline = ev.get("headline") or {}
            row.update(
                score=(headline.get(tuned[0]) or {}).get(metric) if tuned else None,
                tuned=tuned[0] if tuned else None,
                base_name=baseline if baseline and baseline not in tuned else None,
                base_score=(headline.get(baseline) or {}).get(metric) if baseline and baseline not in tuned else None,
                kept=cur.get("kept"), final_loss=sft.get("final_loss"), train_tokens=sft.get("train_tokens"),
                tasks=ev.get("tasks"), trials=ev.get("trials"), k=ev.get("k"), rounds=ev.get("R"),
                suites=sorted((ev.get("suites") or {}).keys()), params=params)
            row["status"] = "Success" if ev and state in (None, "success") else row["status"]
        rows.append(row)
    return rows
