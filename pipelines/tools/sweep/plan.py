"""What a sweep runs: its points (teacher subset, size, seed), their DVC overrides, and what they start from.

Sizes above the number of curate-eligible trajectories of a subset (those left after the funnel's
filters, before selection, counted here by running the funnel) are capped at that number; a subset
with none is skipped with a note. Size 0 (the untuned model) queues no experiment. Points are ordered smallest size first, every seed of a size before
the next size. The experiments start at curate and take everything before it from the DVC cache:
:func:`check_upstream` says what that cache lacks.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.core.errors import UserError
from pipelines.core.params import Params
from pipelines.curation.decontam import EvalIndex, eval_texts
from pipelines.curation.funnel import load_samples, run_funnel, student_tokenizer

DEFAULT_SIZES = (0, 16, 64)
TAIL_START = "curate"  # the first stage an experiment runs; everything before it comes from the cache
TRAJECTORIES = Path("data/trajectories")  # what curate reads (dvc.yaml: --in data/trajectories)


@dataclass(frozen=True)
class Point:
    """One experiment of the sweep."""

    name: str
    teachers: str  # the subset's label: all | replay | replay+embedded
    size: int
    seed: int
    with_baseline: bool = False


def parse_ints(text: str, what: str) -> list[int]:
    """``4,8,16`` -> sorted unique non-negative integers; a UserError names ``--<what>``. ``sizes`` needs one
    above 0 (size 0 is the untuned model, which no experiment trains: :func:`plan` leaves it out)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--{what} {text!r}: expected comma-separated integers, e.g. 4,8,16") from None
    if not values or any(v < 0 for v in values):
        raise UserError(f"--{what} {text!r}: expected one or more non-negative integers")
    if what == "sizes" and not any(values):
        raise UserError(f"--sizes {text!r}: size 0 is the untuned model, which every report shows as N = 0; "
                        f"give at least one size above 0 to train")
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
         sweep_id: str, baseline: str = "every") -> tuple[list[Point], list[str]]:
    """The sweep's experiments, smallest size first and every seed of a size before the next size (a sweep
    stopped early still has spreads for what it finished), and notes on what was capped or skipped.

    Size 0 queues nothing: it is the untuned model, evaluated next to the tuned one (in every experiment with
    ``baseline`` ``every``, in the first with ``once``) and reported as N = 0."""
    notes: list[str] = []
    if 0 in sizes:
        notes.append("size 0 is the untuned model: no experiment trains it; the report's N = 0 rows are the "
                     "untuned model as the experiments evaluated it")
        sizes = [s for s in sizes if s > 0]
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


def eval_suites(params: Params, names: list[str] | None) -> list[dict[str, Any]] | None:
    """The ``eval.suites`` entries named in ``names`` (as params.yaml sets them, limits included); None for
    every suite. A name params.yaml does not list is a UserError."""
    if not names:
        return None
    listed = {s.name: s.model_dump(mode="json", exclude_none=True) for s in params.eval.suites}
    missing = [n for n in names if n not in listed]
    if missing:
        raise UserError(f"--suites: {', '.join(missing)} not in params.yaml eval.suites "
                        f"(it lists {', '.join(listed) or 'none'})")
    return [listed[n] for n in names]


def overrides(point: Point, subsets: dict[str, list[str]], params: Params,
              suites: list[str] | None = None, rounds: int | None = None) -> list[str]:
    """The ``-S key=value`` overrides of one experiment (``suites``: evaluate only these eval suites;
    ``rounds``: eval.rounds, None to keep params.yaml's)."""
    teachers = subsets[point.teachers]
    sets = {"curate.target_size": point.size, "curate.seed": point.seed, "sft.seed": point.seed,
            "curate.teachers": teachers, "eval.register_champion": False}
    picked = eval_suites(params, suites)
    if picked is not None:
        sets["eval.suites"] = picked
    if rounds is not None:
        sets["eval.rounds"] = rounds
    if teachers:  # an explicit subset: nothing else drops teachers behind its back
        sets["curate.drop_teachers"] = []
    if not point.with_baseline:
        sets["eval.models"] = [m.model_dump(mode="json", exclude_none=True) for m in params.eval.models if m.adapter]
    return [f"{key}={hydra(value)}" for key, value in sets.items()]


def queue_command(point: Point, subsets: dict[str, list[str]], params: Params,
                  suites: list[str] | None = None, rounds: int | None = None) -> list[str]:
    """The arguments of ``dvc`` that queue one experiment: ``exp run --queue --downstream -n NAME -S ... curate``."""
    sets = [arg for s in overrides(point, subsets, params, suites, rounds) for arg in ("-S", s)]
    return ["exp", "run", "--queue", "--downstream", "-n", point.name, *sets, TAIL_START]


# ------------------------------------------------------------------ what the experiments start from
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
    inputs = sorted((root / TRAJECTORIES).glob("*.jsonl"))
    if not inputs:
        raise UserError(f"{TRAJECTORIES}: no trajectory files; run `dvc repro collect` first")
    tokenizer = student_tokenizer(params, root)
    decontam = params.curate.decontam
    evals = EvalIndex(eval_texts(decontam, root), decontam.ngram, decontam.min_matches)
    counts: dict[str, int] = {}
    for label, teachers in subsets.items():
        update: dict[str, Any] = {"teachers": teachers}
        if teachers:
            update["drop_teachers"] = []
        funnel, _ = run_funnel(load_samples(inputs, root), params.curate.model_copy(update=update), evals, tokenizer)
        counts[label] = funnel["after_tool_types"]
    return counts
