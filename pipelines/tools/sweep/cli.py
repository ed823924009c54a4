"""Sample-efficiency sweeps: how few training samples are enough, and does the teacher matter?

    python -m pipelines.tools.sweep [run] [--sizes 4,8,16,32,78] [--seeds 0,1] [--teachers all,replay,embedded]
    python -m pipelines.tools.sweep report [--sweep ID]
    make sweep SWEEP_ARGS="--sizes 4,8,16 --seeds 0,1"

``run`` queues one DVC experiment per (teacher subset, size, seed) point of the curate -> sft -> eval
tail, ``dvc exp run --queue --downstream curate -n NAME -S curate.target_size=N -S curate.seed=S
-S sft.seed=S -S curate.teachers=[...]``, starts the queue (``dvc queue start``, one job at a time by
default), waits for it and writes the report. ``--downstream`` starts each experiment at curate: DVC
checks the stages before it out of the cache as ``dvc.lock`` records them (models/base, the collected
trajectories) and never re-runs them, even when their code changed since; the sweep refuses to start
when those outputs are not in the DVC cache. The seed is both the curation seed (which samples a
stratum gives first) and the fine-tuning seed (LoRA initialisation, data order).

Sizes above the number of curate-eligible trajectories of a subset (those left after the funnel's
filters, before selection, counted here by running the funnel) are capped at that number; a subset
with none is skipped with a message. A subset is ``all`` (every teacher) or teacher names joined by
``+`` as trajectories record them (``replay``, ``embedded``, ``replay+embedded``).

The untuned baseline of ``eval.models`` (entries without an adapter) does not depend on the sweep's
variables, so by default only the first experiment evaluates it (``--baseline every``: all do).
Experiments never register a champion (``eval.register_champion=false``).

MLflow: a ``sweep`` run per sweep, a child run per experiment (params ``sweep.size``, ``sweep.seed``,
``sweep.teachers``), and under it the stage runs DVC starts, tagged ``sweep.id``/``sweep.size``/
``sweep.seed``/``sweep.teachers`` and ``dvc.experiment``. ``report`` reads the experiments'
metrics from ``dvc exp show --json``, writes ``reports/sweep.md`` and ``plots/sweep.png`` (the main
eval metric, mean and spread over seeds, against sample count, one line per teacher subset) and logs
both to the sweep run. A difference no larger than the spread over seeds is reported as not significant.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from pipelines.core.errors import UserError
from pipelines.core.io import atomic_write_json, atomic_write_text
from pipelines.core.params import Params, load_params
from pipelines.core.paths import repo_root

log = logging.getLogger("pipelines.tools.sweep")

DEFAULT_SIZES = (4, 8, 16, 32, 78)
TAIL_START = "curate"  # the first stage an experiment runs; everything before it comes from the cache
TRAJECTORIES = Path("data/trajectories")  # what curate reads (dvc.yaml: --in data/trajectories)
SWEEPS = Path(".dvc") / "tmp" / "sweeps"  # sweep records; tracking.SWEEP_POINTS holds the per-experiment notes
REPORT = Path("reports") / "sweep.md"
PLOT = Path("plots") / "sweep.png"
DONE = {"Success", "Failed"}
# What the stages read from the project that queued them: an experiment runs in a copy of its own.
WORKSPACE_VARS = ("LIMI_ROOT", "LIMI_PARAMS", "LIMI_PARENT_RUN_ID")


# ------------------------------------------------------------------ the plan
@dataclass(frozen=True)
class Point:
    """One experiment of the sweep."""

    name: str
    teachers: str  # the subset's label: all | replay | replay+embedded
    size: int
    seed: int
    with_baseline: bool = False


def parse_ints(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--{what} {text!r}: expected comma-separated integers, e.g. 4,8,16") from None
    if not values or any(v < (1 if what == "sizes" else 0) for v in values):
        raise UserError(f"--{what} {text!r}: expected one or more {'positive' if what == 'sizes' else 'non-negative'} "
                        f"integers")
    return sorted(dict.fromkeys(values))


def parse_subsets(text: str) -> dict[str, list[str]]:
    """``all,replay,replay+embedded`` -> ``{"all": [], "replay": ["replay"], ...}`` ([] = every teacher)."""
    subsets: dict[str, list[str]] = {}
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        teachers = [] if item == "all" else sorted({t.strip() for t in item.split("+") if t.strip()})
        if item != "all" and not teachers:
            raise UserError(f"--teachers: {item!r} names no teacher")
        label = "all" if not teachers else "+".join(teachers)
        if not all(c.isalnum() or c in "-_+." for c in label):
            raise UserError(f"--teachers: {item!r}: teacher names are letters, digits, '-', '_' and '.'")
        subsets[label] = teachers
    if not subsets:
        raise UserError("--teachers: no subset given (e.g. all,replay)")
    return subsets


def cap_sizes(sizes: list[int], available: int) -> tuple[list[int], list[int]]:
    """The sizes to run (each at most ``available``, without repeats) and the requested ones that were capped."""
    capped = [s for s in sizes if s > available]
    kept = sorted({min(s, available) for s in sizes}) if available > 0 else []
    return kept, capped


def plan(subsets: dict[str, list[str]], available: dict[str, int], sizes: list[int], seeds: list[int],
         sweep_id: str, baseline: str = "once") -> tuple[list[Point], list[str]]:
    """The sweep's experiments, smallest size first and every seed of a size before the next size (a sweep
    stopped early still has spreads for what it finished), and notes on what was capped or skipped."""
    notes: list[str] = []
    per_subset: dict[str, list[int]] = {}
    for label in subsets:
        n = available.get(label, 0)
        if n == 0:
            notes.append(f"teachers {label}: no curate-eligible trajectories; skipped")
            continue
        run, capped = cap_sizes(sizes, n)
        if capped:
            notes.append(f"teachers {label}: {n} curate-eligible trajectories; size"
                         f"{'s' if len(capped) > 1 else ''} {', '.join(map(str, capped))} capped at {n}")
        per_subset[label] = run
    points = [Point(f"{sweep_id}-{label.replace('+', '_')}-n{size}-s{seed}", label, size, seed)
              for size in sorted({s for run in per_subset.values() for s in run})
              for label, run in per_subset.items() if size in run for seed in seeds]
    if points:
        points = [Point(p.name, p.teachers, p.size, p.seed, baseline == "every" or i == 0)
                  for i, p in enumerate(points)]
    return points, notes


def hydra(value: Any) -> str:
    """A params value in the override syntax ``dvc exp run -S`` reads (lists, dicts, quoted strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra(v)}" for k, v in value.items()) + "}"
    return "[" + ",".join(hydra(v) for v in value) + "]"


def overrides(point: Point, subsets: dict[str, list[str]], params: Params) -> list[str]:
    """The ``-S key=value`` overrides of one experiment."""
    teachers = subsets[point.teachers]
    sets = {"curate.target_size": point.size, "curate.seed": point.seed, "sft.seed": point.seed,
            "curate.teachers": teachers, "eval.register_champion": False}
    if teachers:  # an explicit subset: nothing else drops teachers behind its back
        sets["curate.drop_teachers"] = []
    if not point.with_baseline:
        sets["eval.models"] = [m.model_dump(mode="json", exclude_none=True) for m in params.eval.models if m.adapter]
    return [f"{key}={hydra(value)}" for key, value in sets.items()]


# ------------------------------------------------------------------ before queueing
def check_upstream(root: Path) -> list[str]:
    """What the experiments would miss: outputs of stages before curate that curate, sft or eval read and
    that dvc.lock does not record or the DVC cache does not hold. Empty when the sweep can start."""
    from dvc.repo import Repo

    problems: list[str] = []
    with Repo(str(root)) as repo:
        stages = {s.addressing: s for s in repo.index.stages}
        if TAIL_START not in stages:
            return [f"dvc.yaml has no stage {TAIL_START!r}"]
        tail = {TAIL_START} | {s.addressing for s in _downstream(repo, stages[TAIL_START])}
        outs = {str(out.fs_path): out for s in stages.values() if s.addressing not in tail for out in s.outs}
        needed = {str(dep.fs_path) for name in tail for dep in stages[name].deps}
        for path in sorted(needed):
            out = outs.get(path) or next((o for p, o in outs.items() if path.startswith(p + os.sep)), None)
            if out is None:
                continue  # a file under git (code, seeds), not a stage output
            rel = os.path.relpath(out.fs_path, root)
            where = f"{rel} ({out.stage.addressing})"
            if not out.hash_info:
                problems.append(f"{where}: no version recorded; run `dvc repro {out.stage.addressing}`")
            elif out.changed_cache():
                problems.append(f"{where}: the recorded version is not in the DVC cache; run "
                                f"`dvc repro {out.stage.addressing}` or `dvc pull {rel}`")
            elif out.changed():
                problems.append(f"{where}: the workspace differs from the recorded version; run `dvc checkout {rel}` to use "
                                f"the recorded version or `dvc commit {out.stage.addressing}` to record this one")
    return problems


def _downstream(repo, stage) -> list:
    import networkx as nx

    graph = repo.index.graph  # edges point from a stage to the stages it depends on
    return [s for s in nx.ancestors(graph, stage)] if stage in graph else []


def eligible_counts(params: Params, root: Path, subsets: dict[str, list[str]]) -> dict[str, int]:
    """Per subset, the trajectories left after curate's funnel before selection (the most it can select)."""
    from pipelines.curate import curate, student_tokenizer

    inputs = sorted((root / TRAJECTORIES).glob("*.jsonl"))
    if not inputs:
        raise UserError(f"{TRAJECTORIES}: no trajectory files; run `dvc repro collect` first")
    tokenizer = student_tokenizer(params, root)
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="limi-sweep-") as tmp:
        for label, teachers in subsets.items():
            update: dict[str, Any] = {"target_size": 10**9, "teachers": teachers}
            if teachers:
                update["drop_teachers"] = []
            trial = params.model_copy(update={"curate": params.curate.model_copy(update=update)})
            try:
                report = curate(trial, root, inputs, Path(tmp) / label, None, tokenizer=tokenizer)
                counts[label] = report["funnel"]["after_tool_types"]
            except UserError:
                counts[label] = 0
    return counts


# ------------------------------------------------------------------ running
def dvc_bin() -> str:
    here = Path(sys.executable).parent / "dvc"
    return str(here) if here.exists() else "dvc"


def stage_env(uri: str) -> dict[str, str]:
    """The environment of the queue's workers and the stage commands they run."""
    env = {k: v for k, v in os.environ.items() if k not in WORKSPACE_VARS}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # cmd: python ...
    env["MLFLOW_TRACKING_URI"] = uri
    env.setdefault("DVC_NO_ANALYTICS", "1")
    return env


def dvc(args: list[str], root: Path, env: dict[str, str] | None = None, check: bool = True,
        timeout: float | None = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([dvc_bin(), *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise UserError(f"dvc {' '.join(args)} failed:\n{(result.stderr or result.stdout).strip()[-2000:]}")
    return result


def queue_status(root: Path) -> dict[str, str]:
    """Experiment name -> Queued | Running | Success | Failed, as ``dvc queue status`` shows them."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {e["name"]: e["status"] for e in repo.experiments.celery_queue.status() if e.get("name")}


def wait_for(root: Path, names: list[str], poll_s: float = 5.0) -> dict[str, str]:
    """Block until every named experiment succeeded or failed; report each change of state."""
    seen: dict[str, str] = {}
    started = time.monotonic()
    while True:
        status = queue_status(root)
        for name in names:
            state = status.get(name, "Missing")
            if seen.get(name) != state:
                seen[name] = state
                done = sum(1 for n in names if seen.get(n) in DONE)
                log.info("%s: %s (%d of %d done, %.0f s)", name, state, done, len(names), time.monotonic() - started)
        if all(seen[n] in DONE or seen[n] == "Missing" for n in names):
            return seen
        time.sleep(poll_s)


def run_sweep(root: Path, subsets: dict[str, list[str]], sizes: list[int], seeds: list[int], *, jobs: int = 1,
              baseline: str = "once", dry_run: bool = False, wait: bool = True,
              poll_s: float = 5.0) -> dict[str, Any]:
    """Plan, queue, run and wait; return the sweep record (also saved under ``.dvc/tmp/sweeps``)."""
    from pipelines.core import tracking

    params = load_params(root / "params.yaml")
    if not [m for m in params.eval.models if m.adapter]:
        raise UserError("eval.models has no entry with an adapter: nothing in the sweep would evaluate the "
                        "fine-tuned model")
    problems = check_upstream(root)
    if problems:
        raise UserError("the sweep reuses what the stages before curate made, but:\n  " + "\n  ".join(problems))
    available = eligible_counts(params, root, subsets)
    sweep_id = time.strftime("sweep-%Y%m%d-%H%M%S")
    points, notes = plan(subsets, available, sizes, seeds, sweep_id, baseline)
    for note in notes:
        log.info("%s", note)
    if not points:
        raise UserError("no experiment to run: every teacher subset was skipped")
    commands = [["exp", "run", "--queue", "--downstream", "-n", p.name,
                 *[arg for s in overrides(p, subsets, params) for arg in ("-S", s)], TAIL_START] for p in points]
    if dry_run:
        for cmd in commands:
            print("dvc " + " ".join(_shell_quote(a) for a in cmd))
        return {"id": sweep_id, "points": [asdict(p) for p in points], "notes": notes, "available": available}

    with _at(root):
        uri = tracking.configure()
        experiment_id = tracking.ensure_experiment()
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    sweep_run = client.create_run(experiment_id, run_name=sweep_id, tags={
        "sweep.id": sweep_id, "stage": "sweep", **tracking.git_identity(root)})
    for key, value in {"sweep.sizes": ",".join(map(str, sizes)), "sweep.seeds": ",".join(map(str, seeds)),
                       "sweep.teachers": ",".join(subsets), "sweep.baseline": baseline,
                       "eval.main_metric": params.eval.main_metric, "base_model.source": params.base_model.source,
                       **{f"sweep.available.{k}": v for k, v in available.items()}}.items():
        client.log_param(sweep_run.info.run_id, key, str(value))
    record: dict[str, Any] = {"id": sweep_id, "baseline_rev": head, "tracking_uri": uri,
                              "experiment_id": experiment_id, "run_id": sweep_run.info.run_id,
                              "main_metric": params.eval.main_metric, "sizes": sizes, "seeds": seeds,
                              "subsets": subsets, "available": available, "notes": notes, "points": []}
    points_dir = root / tracking.SWEEP_POINTS
    experiment_name = client.get_experiment(experiment_id).name
    for point, cmd in zip(points, commands):
        tags = {"sweep.id": sweep_id, "sweep.size": str(point.size), "sweep.seed": str(point.seed),
                "sweep.teachers": point.teachers}
        run = client.create_run(experiment_id, run_name=point.name, tags={
            **tags, "mlflow.parentRunId": sweep_run.info.run_id, "dvc.experiment": point.name, "stage": "sweep-point"})
        for key, value in {"sweep.size": point.size, "sweep.seed": point.seed, "sweep.teachers": point.teachers,
                           "sweep.with_baseline": point.with_baseline}.items():
            client.log_param(run.info.run_id, key, str(value))
        atomic_write_json(points_dir / f"{point.name}.json", {
            "parent_run_id": run.info.run_id, "experiment": experiment_name, "tracking_uri": uri, "tags": tags})
        record["points"].append({**asdict(point), "run_id": run.info.run_id})
        dvc(cmd, root)
        log.info("queued %s", point.name)
    save_record(root, record)
    if not wait:
        return record
    names = [p.name for p in points]
    # `dvc queue start` may stay up as the parent of its worker: not waited on here, its output goes to a file.
    queue_log = root / SWEEPS / f"{sweep_id}.queue.log"
    with queue_log.open("w") as out:
        starter = subprocess.Popen([dvc_bin(), "queue", "start", "--jobs", str(jobs)], cwd=root, env=stage_env(uri),
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    try:
        states = wait_for(root, names, poll_s=poll_s)
    except BaseException:
        log.warning("stopping: removing this sweep's queued experiments and killing the running one")
        dvc(["queue", "remove", *names], root, check=False)
        running = [n for n, s in queue_status(root).items() if n in names and s == "Running"]
        if running:
            dvc(["queue", "kill", *running], root, check=False)
        raise
    try:
        starter.wait(timeout=60)  # its worker exits once the queue is empty
    except subprocess.TimeoutExpired:
        log.info("dvc queue start (pid %d) is still up; `dvc queue stop` ends its worker", starter.pid)
    for entry in record["points"]:
        entry["status"] = states.get(entry["name"], "Missing")
        client.set_terminated(entry["run_id"], "FINISHED" if entry["status"] == "Success" else "FAILED")
        if entry["status"] != "Success":
            logs = dvc(["queue", "logs", entry["name"]], root, check=False)
            log.warning("%s %s; its log ends:\n%s", entry["name"], entry["status"].lower(),
                        "\n".join((logs.stdout or logs.stderr).strip().splitlines()[-25:]))
    save_record(root, record)
    return record


def save_record(root: Path, record: dict[str, Any]) -> None:
    atomic_write_json(root / SWEEPS / f"{record['id']}.json", record)


def load_record(root: Path, sweep_id: str | None = None) -> dict[str, Any]:
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


# ------------------------------------------------------------------ statistics
@dataclass
class Cell:
    """One (teacher subset, size): the main metric over seeds."""

    teachers: str
    size: int
    values: list[float]
    seeds: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def spread(self) -> float | None:
        """Sample standard deviation over seeds; None with fewer than two."""
        return statistics.stdev(self.values) if len(self.values) >= 2 else None


@dataclass
class Comparison:
    delta: float | None
    spread: float | None
    significant: bool | None  # None: no spread to compare with (one seed) or no value

    @property
    def label(self) -> str:
        if self.delta is None:
            return "n/a"
        if self.significant is None:
            return "not assessed (one seed)"
        return "yes" if self.significant else "no (within seed spread)"


def compare(new: Cell, old: Cell | None, old_fixed: float | None = None) -> Comparison:
    """``new`` minus ``old`` (or a fixed reference value such as the untuned baseline).

    The difference counts as significant only when it is larger than the spread over seeds, the larger
    of the two cells' standard deviations (a fixed reference has none). With one seed there is no spread
    and nothing is claimed.
    """
    ref = old.mean if old is not None else old_fixed
    if new.mean is None or ref is None:
        return Comparison(None, None, None)
    delta = new.mean - ref
    spreads = [new.spread] + ([old.spread] if old is not None else [])
    if any(s is None for s in spreads):
        return Comparison(delta, None, None)
    spread = max(spreads)  # type: ignore[type-var]
    return Comparison(delta, spread, abs(delta) > spread + 1e-12)


def build_cells(rows: list[dict[str, Any]]) -> list[Cell]:
    """Group successful points by (teachers, size); cells sorted by subset, then size."""
    cells: dict[tuple[str, int], Cell] = {}
    for row in rows:
        if row.get("score") is None:
            continue
        cell = cells.setdefault((row["teachers"], row["size"]), Cell(row["teachers"], row["size"], []))
        cell.values.append(float(row["score"]))
        cell.seeds.append(row["seed"])
        if row.get("kept") is not None:
            cell.kept.append(int(row["kept"]))
    return [cells[k] for k in sorted(cells)]


# ------------------------------------------------------------------ results
def experiment_data(root: Path, baseline_rev: str | None) -> dict[str, dict[str, Any]]:
    """Experiment name -> its ``data`` block (params, metrics) from ``dvc exp show --json``."""
    args = ["exp", "show", "--json"] + (["--rev", baseline_rev] if baseline_rev else [])
    result = dvc(args, root, check=False, timeout=900)
    if result.returncode != 0:  # e.g. the baseline commit is gone: look everywhere
        result = dvc(["exp", "show", "--json", "--all-commits"], root, timeout=900)
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


def _per_model(row: dict[str, Any]) -> Any:
    tasks, k = row.get("tasks"), row.get("k")
    return tasks * k if isinstance(tasks, int) and isinstance(k, int) else "?"


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}"


def render_report(record: dict[str, Any], rows: list[dict[str, Any]], cells: list[Cell], base: float | None,
                  wall_s: float | None = None) -> str:
    metric = record["main_metric"]
    ok = [r for r in rows if r.get("score") is not None]
    first = ok[0] if ok else {}
    params = first.get("params") or {}
    base_model = (params.get("base_model") or {}).get("source", "?")
    eval_p = params.get("eval") or {}
    models = {m["name"]: m for m in eval_p.get("models", [])}
    tuned = models.get(first.get("tuned") or "", {})
    llm = ((params.get("llm") or {}).get("models") or {}).get(tuned.get("model", ""), {})
    suites = ", ".join(f"{s['name']} (first {s['limit']})" if s.get("limit") else s["name"]
                       for s in eval_p.get("suites", [])) or ", ".join(first.get("suites") or []) or "?"
    lines = [f"# Sample-efficiency sweep `{record['id']}`", "",
             "## Setup", "",
             f"- Model: base `{base_model}` ({llm.get('backend', '?')} backend, {llm.get('path', llm.get('model', '?'))}), "
             f"fine-tuned with {(params.get('sft') or {}).get('method', '?')} for "
             f"{(params.get('sft') or {}).get('epochs', '?')} epoch(s) per point",
             f"- Eval suite: {suites}; {first.get('tasks', '?')} tasks, k = {first.get('k', '?')} trial(s) per task "
             f"and model ({_per_model(first)} trials per model and experiment), R = {first.get('rounds', '?')} rounds",
             f"- Main metric: `{metric}` (0-100) of the fine-tuned model (eval.main_metric)",
             f"- Points: sizes {', '.join(map(str, record['sizes']))}; seeds {', '.join(map(str, record['seeds']))} "
             f"(curate.seed and sft.seed); teacher subsets {', '.join(record['subsets'])}",
             f"- Curate-eligible trajectories: "
             + ", ".join(f"{k} {v}" for k, v in record.get("available", {}).items()),
             f"- Experiments: {len(rows)} queued, {len(ok)} with results; baseline commit "
             f"`{(record.get('baseline_rev') or '?')[:12]}`" + (f"; wall time {wall_s / 60:.1f} min" if wall_s else ""),
             f"- Untuned baseline ({first.get('base_name') or 'base'}): {_fmt(base)}"
             + ("" if base is not None else " (not evaluated in this sweep)")]
    lines += [f"- {note}" for note in record.get("notes", [])]
    lines += ["", "## Results", "",
              f"Mean and spread (sample standard deviation over seeds) of `{metric}`. A difference counts as "
              "significant only when it is larger than the spread over seeds; with one seed nothing is claimed.", "",
              f"| teachers | samples | seeds | {metric} mean | spread | per seed | Δ vs previous size | significant | "
              f"Δ vs untuned | significant |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    previous: dict[str, Cell] = {}
    for cell in cells:
        prev = previous.get(cell.teachers)
        step = compare(cell, prev) if prev else Comparison(None, None, None)
        vs_base = compare(cell, None, base)
        kept = sorted(set(cell.kept))
        samples = f"{cell.size}" + (f" (kept {', '.join(map(str, kept))})" if kept and kept != [cell.size] else "")
        per_seed = ", ".join(f"s{s}: {_fmt(v)}" for s, v in zip(cell.seeds, cell.values))
        lines.append(f"| {cell.teachers} | {samples} | {len(cell.values)} | {_fmt(cell.mean)} | {_fmt(cell.spread)} | "
                     f"{per_seed} | {_signed(step.delta) if prev else '-'} | {step.label if prev else '-'} | "
                     f"{_signed(vs_base.delta)} | {vs_base.label} |")
        previous[cell.teachers] = cell
    lines += ["", "## Experiments", "", "| experiment | teachers | size | seed | status | kept | "
              f"{metric} | sft final loss | train tokens |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['teachers']} | {r['size']} | {r['seed']} | {r['status']} | "
                     f"{r.get('kept', 'n/a') if r.get('kept') is not None else 'n/a'} | {_fmt(r.get('score'))} | "
                     f"{_fmt(r.get('final_loss'), 3)} | {r.get('train_tokens') or 'n/a'} |")
    lines += ["", "`dvc exp show` lists these experiments by name; each is a child of the MLflow run "
              f"`{record['id']}` (tags `sweep.id`, `sweep.size`, `sweep.seed`, `sweep.teachers`).", ""]
    return "\n".join(lines)


def plot(cells: list[Cell], base: float | None, metric: str, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label in dict.fromkeys(c.teachers for c in cells):
        mine = [c for c in cells if c.teachers == label and c.mean is not None]
        xs = [c.size for c in mine]
        ax.errorbar(xs, [c.mean for c in mine], yerr=[c.spread or 0.0 for c in mine], marker="o", capsize=4,
                    label=f"teachers: {label}")
    if base is not None:
        ax.axhline(base, color="grey", linestyle="--", linewidth=1, label="untuned base")
    sizes = sorted({c.size for c in cells})
    if sizes and sizes[-1] >= 4 * sizes[0]:
        ax.set_xscale("log", base=2)
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(s) for s in sizes])
    ax.set_xlabel("training samples (curate.target_size)")
    ax.set_ylabel(f"{metric} (mean ± sd over seeds)")
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]), top=max(ax.get_ylim()[1], 1.0))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)


def report(root: Path, sweep_id: str | None = None, wall_s: float | None = None) -> dict[str, Any]:
    """Collect the sweep's results; write reports/sweep.md and plots/sweep.png; log them to MLflow."""
    record = load_record(root, sweep_id)
    rows = point_rows(record, experiment_data(root, record.get("baseline_rev")))
    cells = build_cells(rows)
    bases = [r["base_score"] for r in rows if r.get("base_score") is not None]
    base = statistics.fmean(bases) if bases else None
    metric = record["main_metric"]
    wall_s = wall_s if wall_s is not None else record.get("wall_seconds") or _wall_from_mlflow(record, rows)
    text = render_report(record, rows, cells, base, wall_s)
    atomic_write_text(root / REPORT, text)
    first = next((r for r in rows if r.get("score") is not None), {})
    done = sum(1 for r in rows if r.get("score") is not None)
    title = (f"{metric} vs training samples ({first.get('tasks', '?')} tasks, k={first.get('k', '?')}, "
             f"seeds {', '.join(map(str, record['seeds']))}"
             + (f"; {done} of {len(rows)} experiments" if done < len(rows) else "") + ")")
    plot(cells, base, metric, root / PLOT, title)
    summary = {"report": str(root / REPORT), "plot": str(root / PLOT), "rows": rows, "base": base,
               "cells": [{"teachers": c.teachers, "size": c.size, "mean": c.mean, "spread": c.spread,
                          "values": c.values} for c in cells]}
    _log_report(record, rows, cells, base, root)
    return summary


def _wall_from_mlflow(record: dict[str, Any], rows: list[dict[str, Any]]) -> float | None:
    """Seconds from the sweep run's start to the end of its last stage run, once no experiment is waiting
    (for a sweep whose queue was started and waited on by someone else, e.g. ``--no-wait``)."""
    if any(r["status"] in ("Queued", "Running") for r in rows):
        return None
    try:
        from mlflow import MlflowClient

        client = MlflowClient(record["tracking_uri"])
        start = client.get_run(record["run_id"]).info.start_time
        runs = client.search_runs([record["experiment_id"]], f"tags.`sweep.id` = '{record['id']}'",
                                  max_results=1000)
        ends = [r.info.end_time for r in runs if r.info.end_time and r.data.tags.get("stage") not in
                ("sweep", "sweep-point")]
        return (max(ends) - start) / 1000.0 if ends and start else None
    except Exception:
        return None


def _log_report(record: dict[str, Any], rows: list[dict[str, Any]], cells: list[Cell], base: float | None,
                root: Path) -> None:
    from mlflow import MlflowClient

    from pipelines.core.tracking import scrub

    try:
        client = MlflowClient(record["tracking_uri"])
        metric = record["main_metric"]
        for r in rows:
            if not r.get("run_id"):
                continue
            if r["status"] in ("Success", "Failed") and client.get_run(r["run_id"]).info.status == "RUNNING":
                client.set_terminated(r["run_id"], "FINISHED" if r["status"] == "Success" else "FAILED")
            values = {f"eval.{metric}": r.get("score"), "curate.kept": r.get("kept"),
                      "sft.final_loss": r.get("final_loss"), f"eval.base.{metric}": r.get("base_score")}
            for key, value in values.items():
                if isinstance(value, (int, float)):
                    client.log_metric(r["run_id"], key, float(value))
        run_id = record["run_id"]
        for c in cells:
            if c.mean is not None:
                client.log_metric(run_id, f"{c.teachers}.n{c.size}.mean", c.mean)
            if c.spread is not None:
                client.log_metric(run_id, f"{c.teachers}.n{c.size}.spread", c.spread)
        if base is not None:
            client.log_metric(run_id, f"base.{metric}", base)
        with tempfile.TemporaryDirectory() as tmp:
            md = Path(tmp) / REPORT.name
            md.write_text(scrub((root / REPORT).read_text(encoding="utf-8")))
            client.log_artifact(run_id, str(md))
        client.log_artifact(run_id, str(root / PLOT))
        if any(r["status"] in ("Queued", "Running") for r in rows):
            return  # a report of a sweep still running: the run stays open for the final one
        failed = sum(1 for r in rows if r["status"] != "Success")
        client.set_tag(run_id, "sweep.failed", str(failed))
        client.set_terminated(run_id, "FINISHED" if not failed else "FAILED")
    except Exception as exc:  # the files are written; the record is what failed
        log.warning("MLflow logging of the sweep report failed (%s); reports/sweep.md and plots/sweep.png are "
                    "written", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


# ------------------------------------------------------------------ command line
class _at:
    """Resolve the project's defaults (tracking URI, params) against ``root`` while inside."""

    def __init__(self, root: Path):
        self.root, self.saved = root, None

    def __enter__(self):
        self.saved = os.environ.get("LIMI_ROOT")
        os.environ["LIMI_ROOT"] = str(self.root)

    def __exit__(self, *exc):
        if self.saved is None:
            os.environ.pop("LIMI_ROOT", None)
        else:
            os.environ["LIMI_ROOT"] = self.saved


def _shell_quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.tools.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="queue and run the sweep, then write the report (the default)",
                         description="Queue one DVC experiment per (teacher subset, size, seed), run the queue, "
                                     "wait, write reports/sweep.md and plots/sweep.png.")
    rep = sub.add_parser("report", help="(re)write the report of a finished sweep",
                         description="Collect a sweep's results from `dvc exp show --json`, write reports/sweep.md "
                                     "and plots/sweep.png and log both to the sweep's MLflow run.")
    for p in (parser, run):
        p.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                       help="curate.target_size values (default: %(default)s); each is capped at the number of "
                            "curate-eligible trajectories of the teacher subset, with a note")
        p.add_argument("--seeds", default="0,1", help="seeds, each used as curate.seed and sft.seed "
                                                      "(default: %(default)s)")
        p.add_argument("--teachers", default="all",
                       help="teacher subsets, comma-separated: 'all' or teacher names joined by '+' as the "
                            "trajectories record them, e.g. all,replay,embedded (default: %(default)s); a subset "
                            "without eligible trajectories is skipped with a message")
        p.add_argument("--jobs", type=int, default=1, help="experiments at once (default: 1; more only with the "
                                                           "cores and memory for several trainings)")
        p.add_argument("--baseline", choices=("once", "every"), default="once",
                       help="evaluate the untuned model(s) of eval.models in the first experiment only (default) "
                            "or in every experiment")
        p.add_argument("--dry-run", action="store_true", help="print the dvc commands and exit")
        p.add_argument("--no-wait", action="store_true", help="queue and exit; start the queue yourself "
                                                              "(dvc queue start) and run `report` afterwards")
    rep.add_argument("--sweep", help="the sweep id (default: the latest)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    root = repo_root()
    if args.command == "report":
        summary = report(root, args.sweep)
        print(f"wrote {summary['report']} and {summary['plot']}")
        return 0
    started = time.monotonic()
    record = run_sweep(root, parse_subsets(args.teachers), parse_ints(args.sizes, "sizes"),
                       parse_ints(args.seeds, "seeds"), jobs=args.jobs, baseline=args.baseline,
                       dry_run=args.dry_run, wait=not args.no_wait)
    if args.dry_run or args.no_wait:
        if args.no_wait:
            print(f"queued {len(record['points'])} experiments of {record['id']}; `dvc queue start`, then "
                  f"`python -m pipelines.tools.sweep report --sweep {record['id']}`")
        return 0
    record["wall_seconds"] = round(time.monotonic() - started, 1)
    save_record(root, record)
    summary = report(root, record["id"])
    failed = [p["name"] for p in record["points"] if p.get("status") != "Success"]
    print(f"sweep {record['id']}: {len(record['points']) - len(failed)} of {len(record['points'])} experiments "
          f"succeeded in {record['wall_seconds'] / 60:.1f} min; wrote {summary['report']} and {summary['plot']}")
    return 1 if failed else 0

