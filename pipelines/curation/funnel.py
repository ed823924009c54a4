"""The curate funnel: which collected trajectories become training samples, and why the others do not.

:func:`load_samples` reads trajectory files into :class:`Sample` records; :func:`run_funnel` runs the
steps of :data:`FUNNEL` in order, each marking the samples it drops (with a reason and a detail) in
place, and returns the counts; :func:`funnel_report` is what ``data/sft/report.json`` holds. The
result depends only on the input files (in the order given), the params and the student's
tokenizer: ties are broken by input order, the one random choice is seeded by ``curate.seed``.
What each step drops is listed in ``python -m pipelines.curate --help``.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

from pipelines.core.datasets import DataSource, read_records
from pipelines.core.errors import UserError, first_error
from pipelines.core.params import Params
from pipelines.core.schema import Message, TrajectoryMeta, TrajectoryRecord
from pipelines.curation.config import CurateParams
from pipelines.curation.decontam import EvalIndex, HiddenIndex
from pipelines.curation.lsh import exact_duplicate_groups, near_duplicate_clusters

FUNNEL = ("schema", "verified", "exact_dup", "near_dup", "decontam", "hidden_material", "length", "tool_types",
          "selection")


@dataclass
class Sample:
    """One trajectory record on its way through the funnel.

    The steps read ``messages`` and ``meta``, the record validated as a :class:`TrajectoryRecord`;
    ``record`` is the line as read, which ``train.jsonl`` gets back unchanged. A record that fails
    validation has no messages and, for the report, the valid fields of its meta.
    """

    index: int
    record: dict[str, Any]
    source_file: str
    line: int
    meta: TrajectoryMeta = field(default_factory=TrajectoryMeta)
    messages: list[Message] = field(default_factory=list)
    tokens: int = 0
    status: str = "kept"
    reason: str | None = None
    detail: str = ""

    @property
    def key_text(self) -> str:
        """What duplicates are judged on: the query and the final diff (transcripts are dominated by file dumps).
        A record without ``meta.query`` (the public LIMI rows have no meta) is judged on its first user message,
        not on an empty query that every such record would share."""
        query = self.meta.query or next((m.content for m in self.messages if m.role == "user" and m.content), "")
        return f"{query}\n{self.meta.final_diff}"

    @property
    def trained_texts(self) -> list[str]:
        """What training reads of the sample, as text: every message's content and every string (or other
        value) in its tool-call arguments, one item each (not JSON-escaped, so code keeps its words), and the
        final diff, which also shows files written without a tool call naming their content."""
        out = [m.content for m in self.messages if m.content]
        for m in self.messages:
            for call in m.tool_calls or []:
                out += _leaves(call.function.arguments)
        if self.meta.final_diff:
            out.append(self.meta.final_diff)
        return out

    @property
    def task_id(self) -> str | None:
        return _stated(self.meta, "task_id")

    @property
    def teacher(self) -> str | None:
        return _stated(self.meta, "teacher")

    @property
    def domain(self) -> str | None:
        return _stated(self.meta, "domain")

    @property
    def category(self) -> str | None:
        return _stated(self.meta, "category")

    @property
    def source(self) -> str | None:
        """Where the task came from: human (a seed task), drill (a templated one), synthetic, pr."""
        return _stated(self.meta, "source")

    def drop(self, reason: str, detail: str = "") -> None:
        self.status, self.reason, self.detail = "dropped", reason, detail

    def train_record(self) -> dict[str, Any]:
        """What ``train.jsonl`` holds for this sample: its messages, tools and meta as read."""
        return {"messages": self.record["messages"], "tools": self.record.get("tools", []),
                "meta": self.record.get("meta", {})}


def _leaves(value: Any) -> list[str]:
    """The scalar values inside a tool call's arguments, as text, depth first."""
    if isinstance(value, dict):
        return [text for item in value.values() for text in _leaves(item)]
    if isinstance(value, list):
        return [text for item in value for text in _leaves(item)]
    return [] if value is None else [value if isinstance(value, str) else json.dumps(value)]


def _stated(model: BaseModel | None, name: str) -> Any:
    """Field ``name`` of ``model`` where the record states it, else None (not the type's default): the report
    shows a missing task, teacher or category as null, and ranking tells an unrecorded value from a zero."""
    return getattr(model, name) if model is not None and name in model.model_fields_set else None


def load_samples(paths: Iterable[Path | DataSource], root: Path | None = None) -> list[Sample]:
    """Every record of every source (JSONL, Parquet or Arrow file, Hugging Face dataset; see
    :mod:`pipelines.core.datasets`), in order, read as a :class:`TrajectoryRecord`.

    A record that does not validate is marked dropped by the ``schema`` step, its detail naming file, line
    (or row) and the first bad field; a line that is not JSON is a UserError naming file and line. Files are
    named relative to ``root`` when inside it, so the report does not depend on where the project is checked out.
    """
    samples: list[Sample] = []
    for path in paths:
        source = path if isinstance(path, DataSource) else DataSource(path=Path(path))
        shown = _relative(source.path, root) if source.path is not None else source.name
        for _, lineno, data in read_records(source):
            sample = Sample(len(samples), data if isinstance(data, dict) else {}, shown, lineno)
            try:
                trajectory = TrajectoryRecord.model_validate(data)
            except ValidationError as exc:
                sample.meta = _readable_meta(sample.record.get("meta"))
                where, msg = first_error(exc)
                sample.drop("schema", f"{shown}:{lineno}: {where}: {msg}")
            else:
                sample.meta, sample.messages = trajectory.meta, trajectory.messages
            samples.append(sample)
    return samples


def _readable_meta(raw: Any) -> TrajectoryMeta:
    """The meta of a record that failed validation, less its invalid fields: what the report can show of it."""
    if not isinstance(raw, dict):
        return TrajectoryMeta()
    try:
        return TrajectoryMeta.model_validate(raw)
    except ValidationError as exc:
        bad = {error["loc"][0] for error in exc.errors() if error["loc"]}
        return TrajectoryMeta.model_validate({k: v for k, v in raw.items() if k not in bad})


def _relative(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.resolve().relative_to(Path(root).resolve()))
        except ValueError:
            pass
    return str(path)


def alive(samples: list[Sample]) -> list[Sample]:
    """The samples no step has dropped yet, in input order."""
    return [s for s in samples if s.status == "kept"]


# ------------------------------------------------------------------ steps
def step_verified(samples: list[Sample], params: CurateParams) -> None:
    """Drop episodes that failed verification (unless admitted) or whose teacher is not wanted."""
    for s in alive(samples):
        if params.teachers and s.teacher not in params.teachers:
            s.drop("verified", f"teacher {s.teacher} is not in curate.teachers")
        elif s.teacher in params.drop_teachers:
            s.drop("verified", f"teacher {s.teacher} is in curate.drop_teachers")
        elif not params.admit_unverified and not s.meta.passed:
            s.drop("verified", _not_verified(s.meta))


def _not_verified(meta: TrajectoryMeta) -> str:
    """Why a sample counts as not verified; a ``limi import`` record says whether its source gave no verdict."""
    imported = (meta.model_extra or {}).get("imported")
    if isinstance(imported, dict):
        if imported.get("verification") == "failed":
            return f"imported from {imported.get('format')}, failed ({imported.get('verified_by')})"
        status = f"; its exit status {imported['exit_status']} is not a verdict" if imported.get("exit_status") else ""
        return f"imported from {imported.get('format')} without a verdict{status} (curate.admit_unverified admits it)"
    return f"not verified (termination {meta.termination}, score {_stated(meta.final, 'score')})"


def _quality(s: Sample) -> tuple:
    """Sort key: better verified first, then fewer rounds (unrecorded: last), then shorter."""
    score = s.meta.final.score if s.meta.final else 0.0
    rounds = s.meta.rounds_used if "rounds_used" in s.meta.model_fields_set else 99
    return (-int(s.meta.passed), -score, rounds, len(json.dumps(s.record)), s.index)


def _keep_best(groups: list[list[int]], by_index: dict[int, Sample], reason: str, what: str) -> None:
    for group in groups:
        members = sorted((by_index[i] for i in group), key=_quality)
        for loser in members[1:]:
            loser.drop(reason, f"{what} of sample {members[0].index} ({members[0].task_id})")


def step_exact_dup(samples: list[Sample]) -> None:
    """Keep the best of each group with the same normalised (query, final diff)."""
    rest = alive(samples)
    groups = exact_duplicate_groups([s.index for s in rest], [s.key_text for s in rest])
    _keep_best(groups, {s.index: s for s in rest}, "exact_dup", "exact duplicate")


def step_near_dup(samples: list[Sample], params: CurateParams) -> None:
    """Keep the best of each MinHash/LSH cluster over (query, final diff); seeded by ``curate.seed``."""
    rest = alive(samples)
    nd = params.near_dup
    clusters = near_duplicate_clusters([s.index for s in rest], [s.key_text for s in rest], threshold=nd.threshold,
                                       num_perm=nd.num_perm, ngram=nd.ngram, seed=params.seed)
    _keep_best(clusters, {s.index: s for s in rest}, "near_dup", "near duplicate")


def step_decontam(samples: list[Sample], evals: EvalIndex) -> None:
    """Drop samples whose query, final diff or user turns overlap an eval task."""
    for s in alive(samples):
        text = "\n".join([s.key_text] + [m.content or "" for m in s.messages if m.role == "user"])
        why = evals.contamination(text, s.meta.pr)
        if why:
            s.drop("decontam", why)


def step_hidden_material(samples: list[Sample], hidden: HiddenIndex | None) -> None:
    """Drop samples whose messages or final diff hold an n-gram of an eval task's hidden material (solution
    files, check commands, rubric criteria, gold patches); the detail names the task and the kind."""
    if hidden is None:
        return
    for s in alive(samples):
        why = hidden.leak(s.trained_texts)
        if why:
            s.drop("hidden_material", why)


def step_length(samples: list[Sample], params: CurateParams, tokenizer) -> None:
    """Count tokens with the student's chat template; drop (never truncate) what exceeds ``curate.max_length``."""
    for s in alive(samples):
        # the template reads the record as train.jsonl will hold it, so the count is what sft sees
        train = s.train_record()
        ids = tokenizer.apply_chat_template(train["messages"], tools=train["tools"] or None, tokenize=True)
        s.tokens = len(ids["input_ids"] if hasattr(ids, "keys") else ids)  # transformers 5 returns a BatchEncoding
        if s.tokens > params.max_length:
            s.drop("length", f"{s.tokens} tokens > curate.max_length {params.max_length}")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}.get(type(value), "other")


def step_tool_types(samples: list[Sample]) -> None:
    """Drop samples with a tool argument whose JSON type differs from the rest of the set (Arrow needs one)."""
    seen: dict[tuple[str, str], Counter] = defaultdict(Counter)
    types_of: dict[int, dict[tuple[str, str], str]] = {}
    for s in alive(samples):
        mine: dict[tuple[str, str], str] = {}
        for m in s.messages:
            for call in m.tool_calls or []:
                for key, value in call.function.arguments.items():
                    mine[(call.function.name, key)] = _json_type(value)
        types_of[s.index] = mine
        for k, t in mine.items():
            seen[k][t] += 1
    majority = {k: c.most_common(1)[0][0] for k, c in seen.items()}  # ties: the type seen first
    for s in alive(samples):
        odd = [(k, t) for k, t in types_of[s.index].items() if t != majority[k]]
        if odd:
            (tool, key), t = odd[0]
            s.drop("tool_types", f"{tool}.{key} is {t} here but {majority[(tool, key)]} in the rest of the set")


def step_select(samples: list[Sample], params: CurateParams) -> None:
    """Round-robin over (domain, category) strata, best first within each; deterministic for a seed."""
    strata: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for s in alive(samples):
        strata[(str(s.domain), str(s.category))].append(s)
    order = sorted(strata)
    random.Random(params.seed).shuffle(order)  # which stratum gives first is a seeded choice
    for key in order:
        strata[key].sort(key=lambda s: (_quality(s)[:3], s.tokens, s.index))
    chosen: list[Sample] = []
    while len(chosen) < params.target_size and any(strata[k] for k in order):
        for key in order:
            if strata[key] and len(chosen) < params.target_size:
                chosen.append(strata[key].pop(0))
    for rest in strata.values():
        for s in rest:
            s.drop("selection", f"not among the {params.target_size} selected")


# ------------------------------------------------------------------ the funnel
def run_funnel(samples: list[Sample], params: CurateParams, evals: EvalIndex, tokenizer,
               hidden: HiddenIndex | None = None) -> tuple[dict[str, int], dict[str, float]]:
    """Run every step of :data:`FUNNEL` over ``samples``, marking drops in place (``hidden_material`` drops
    nothing without ``hidden``).

    Returns the counts (``input``, ``after_<step>``, ``dropped_<step>``) and each step's seconds (a
    run-dependent figure: for ``tracker.record_timings``, never for a DVC output).
    """
    steps = {
        "schema": lambda: None,  # marked while loading
        "verified": lambda: step_verified(samples, params),
        "exact_dup": lambda: step_exact_dup(samples),
        "near_dup": lambda: step_near_dup(samples, params),
        "decontam": lambda: step_decontam(samples, evals),
        "hidden_material": lambda: step_hidden_material(samples, hidden),
        "length": lambda: step_length(samples, params, tokenizer),
        "tool_types": lambda: step_tool_types(samples),
        "selection": lambda: step_select(samples, params),
    }
    funnel = {"input": len(samples)}
    seconds: dict[str, float] = {}
    for name in FUNNEL:
        started = time.perf_counter()
        steps[name]()
        seconds[name] = round(time.perf_counter() - started, 3)
        funnel[f"after_{name}"] = len(alive(samples))
    for name in FUNNEL:
        funnel[f"dropped_{name}"] = sum(1 for s in samples if s.reason == name)
    return funnel, seconds


def funnel_report(samples: list[Sample], funnel: dict[str, int], eval_tasks: int,
                  hidden_pieces: int = 0) -> dict[str, Any]:
    """The report of a funnel run: counts, how many eval tasks and pieces of hidden material were checked, what
    was kept per category and teacher (sorted), every sample's fate."""
    kept = alive(samples)
    return {
        "funnel": funnel,
        "eval_tasks_checked": eval_tasks,
        "hidden_material_checked": hidden_pieces,
        "kept_by_category": _sorted_counts(s.category for s in kept),
        "kept_by_teacher": _sorted_counts(s.teacher for s in kept),
        "kept_by_source": _sorted_counts(s.source for s in kept),
        "samples": [{"index": s.index, "file": s.source_file, "line": s.line, "task_id": s.task_id,
                     "teacher": s.teacher, "source": s.source, "category": s.category, "tokens": s.tokens,
                     "status": s.status, "reason": s.reason, "detail": s.detail} for s in samples],
    }


def _sorted_counts(values: Iterable[Any]) -> dict[Any, int]:
    return dict(sorted(Counter(values).items(), key=lambda item: str(item[0])))


def student_tokenizer(params: Params, root: Path):
    """The student's tokenizer (with its chat template), from its local model directory."""
    from transformers import AutoTokenizer

    spec = params.llm.models[params.llm.roles.student]
    path = getattr(spec, "path", None)
    if path is None:
        raise UserError("curate: the student (llm.roles.student) must be a local model to count tokens")
    path = Path(path) if Path(path).is_absolute() else root / path
    if not (path / "tokenizer.json").exists() and not (path / "tokenizer_config.json").exists():
        raise UserError(f"{path}: no tokenizer; run `dvc repro base_model` first")
    return AutoTokenizer.from_pretrained(path)
