"""Which episodes collect runs: every (query, teacher) pair the params ask for, each with a stable key.

An episode's key hashes the query record, the teacher's spec and the settings that shape the episode,
so a rerun skips the episodes already recorded (resume) and reruns those whose inputs changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pipelines.core.errors import UserError
from pipelines.collection.config import CollectParams
from pipelines.core.params import Params, params_hash
from pipelines.core.schema import Query, read_queries

log = logging.getLogger(__name__)
PROMPT_VERSION = "agent-v1"


@dataclass
class Job:
    """One episode to run: a query and the teacher that collects on it."""

    query: Query
    teacher: str
    key: str


def load_all_queries(params: CollectParams, root: Path) -> list[Query]:
    """Seed tasks and drills (if enabled) plus every existing query file, ids unique across them."""
    from pipelines.core.seeds import DRILLS_DIR, load_seed_tasks

    queries: list[Query] = []
    if params.seeds:
        queries.extend(load_seed_tasks())
    if params.drills:
        queries.extend(load_seed_tasks(DRILLS_DIR))
    for rel in params.query_files:
        path = root / rel
        if path.exists():
            queries.extend(read_queries(path))
        else:
            log.info("%s: not there (yet); skipped", rel)
    seen: set[str] = set()
    for q in queries:
        if q.id in seen:
            raise UserError(f"query id {q.id!r} appears in more than one source; ids must be unique")
        seen.add(q.id)
    return queries


def episode_key(query: Query, teacher: str, params: Params) -> str:
    """Hash of everything that shapes an episode: the query record, the teacher's spec, the settings (the tool
    set only when it is not the default)."""
    c = params.collect
    teacher_spec = "replay" if teacher == "replay" else params.llm.models[teacher].model_dump(mode="json")
    settings = {
        "query": query.model_dump(mode="json"), "teacher": teacher, "teacher_spec": teacher_spec,
        "rounds": c.rounds, "user": c.user, "user_model": c.user_model, "limits": c.limits.model_dump(),
        "sampling": c.sampling.model_dump(), "sandbox": c.sandbox, "prompt": PROMPT_VERSION,
        "command_timeout_s": c.command_timeout_s, "memory_mb": c.memory_mb,
        # only a set other than the default counts, so the default set's keys are those from before sets
        **({"tool_set": c.tool_set} if c.tool_set != "default" else {}),
    }
    return params_hash(settings)


def plan_jobs(queries: list[Query], params: Params) -> list[Job]:
    """Every (query, teacher) pair the params ask for, in a stable order."""
    jobs: list[Job] = []
    for assignment in params.collect.teachers:
        picked = [q for q in queries if q.source in assignment.sources]
        if assignment.model == "replay":
            picked = [q for q in picked if has_reference(q)]
        if assignment.max_queries:
            picked = picked[: assignment.max_queries]
        jobs.extend(Job(q, assignment.model, episode_key(q, assignment.model, params)) for q in picked)
    return jobs


def has_reference(query: Query) -> bool:
    """Whether the replay teacher can solve ``query`` (a gold patch or a solution directory)."""
    return bool(query.verifier.patch) or bool(query.provenance.get("solution_dir"))
