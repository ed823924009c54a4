"""Collect on N machines: which shard runs an episode, where a shard keeps its work, and the merge.

    shard_of(job.key, 4)                       # 0..3, from the episode key alone
    shard_jobs(jobs, 2, 4)                     # the jobs of shard 2 of 4, in plan order
    merge_shards(jobs, shard_dir, 4)           # every shard's records in plan order, plus their reports

A shard is a stable slice of the plan: the episode key (a hash of the query and the settings) picks it by
jump consistent hashing, so it depends on the key and the shard count only, never on the order or
number of the other episodes; with one shard every episode is in shard 0, and going from N to N+1 shards
moves only the episodes the new shard takes (about 1/(N+1) of them). The merge puts the records back in
plan order, which is what an unsharded run writes: with one shard its output is byte-identical.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator

from pipelines.collection.plan import Job
from pipelines.core.errors import UserError
from pipelines.core.shards import shard_of

SHARD_ROOT = Path("data") / "shards"  # data/shards/<stage>/<i>: shard i's output (a DVC out)
JOURNAL_DIR = SHARD_ROOT / "journal"  # data/shards/journal/<stage>-<i>.jsonl: finished episodes (git-ignored)
REGENERATE = "python -m pipelines.tools.stage_deps --write"


def shard_jobs(jobs: list[Job], shard: int, shards: int) -> list[Job]:
    """The jobs shard ``shard`` of ``shards`` runs, in plan order; a bad index is a UserError."""
    if not 0 <= shard < shards:
        raise UserError(f"shard {shard} is not one of 0..{shards - 1} (params.yaml: collect.shards is {shards}); "
                        f"regenerate dvc.yaml's shard list with `{REGENERATE}`")
    return [job for job in jobs if shard_of(job.key, shards) == shard]


def shard_dir(root: Path, stage: str, shard: int) -> Path:
    return root / SHARD_ROOT / stage / str(shard)


def journal_path(root: Path, stage: str, shard: int) -> Path:
    return root / JOURNAL_DIR / f"{stage}-{shard}.jsonl"


def earlier_records(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Records from files a shard may resume from (the last merged output, other shards' journals): every
    whole line that parses; a torn or foreign line is no finished episode and is passed over."""
    for path in paths:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("meta"), dict):
                yield record


def merge_shards(jobs: list[Job], root: Path, stage: str, shards: int,
                 episodes_file: str) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    """Read shard 0..shards-1's ``episodes_file`` and ``report.json`` under ``data/shards/<stage>/``.

    Returns the records in plan order and each shard's report, in shard order. Fails (UserError, naming the
    file and line) on a missing shard output, a record in the wrong shard, a key twice or a key the plan
    does not have: each means the outputs come from another plan or shard count.
    """
    order = {job.key: i for i, job in enumerate(jobs)}
    found: dict[str, dict[str, Any]] = {}
    reports = []
    for shard in range(shards):  # all there before any is read: a missing one says more than what is in the others
        folder = shard_dir(root, stage, shard)
        if not (folder / episodes_file).is_file() or not (folder / "report.json").is_file():
            raise UserError(f"{(folder / episodes_file).relative_to(root)}: shard {shard} of {shards} has no output; "
                            f"run its stage ({stage}_shard@{shard}), and if dvc.yaml lists fewer shards than "
                            f"params.yaml's {stage}.shards, regenerate it with `{REGENERATE}`")
    for shard in range(shards):
        folder = shard_dir(root, stage, shard)
        path = folder / episodes_file
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path.relative_to(root)}:{lineno}"
            try:
                record = json.loads(line)
                key = record["meta"]["episode_key"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise UserError(f"{where}: not a trajectory record") from None
            if key not in order:
                raise UserError(f"{where}: episode {key} is not in the current plan; rerun shard {shard}")
            if shard_of(key, shards) != shard:
                raise UserError(f"{where}: episode {key} belongs to shard {shard_of(key, shards)} of {shards}, "
                                f"not {shard}: the output comes from another shard count; rerun the shards")
            if key in found:
                raise UserError(f"{where}: episode {key} recorded twice")
            found[key] = record
        reports.append(json.loads((folder / "report.json").read_text(encoding="utf-8")))
    return [found[key] for key in sorted(found, key=order.__getitem__)], reports
