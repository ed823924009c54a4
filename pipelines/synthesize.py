"""Stage ``synthesize``: agentic query synthesis with a teacher, a critic and a near-duplicate check.

``python -m pipelines.synthesize [--seeds data/seeds] [--out data/queries/synthetic.jsonl]
[--metrics metrics/synthesize.json]``

For each (domain, category) target in ``params.yaml: synthesize`` and each of ``per_category`` slots:

1. The teacher (``llm.roles.teacher``) drafts a task by calling ``submit_task`` with the request, its
   category and domain, small starting files and shell checks (python3 stdlib, bash, coreutils; run in
   the sandbox with the workspace as cwd). Seed tasks of the category (others when it has few) are the
   few-shot examples. Arguments are validated; invalid answers are retried up to ``attempts`` times.
2. A draft whose request shares too many word 3-grams with a seed or an already accepted query is
   rejected (exact Jaccard of :func:`~pipelines.curation.minhash.shingle_set`, ``dup_threshold``).
3. The critic (``llm.roles.critic``) scores realism, specificity, verifiability and difficulty (1-5)
   by calling ``submit_scores``. The draft passes when its score (``score_rule``: the minimum of the
   four by default, so one strong dimension cannot hide an unverifiable task) reaches ``min_score``;
   otherwise the teacher rewrites it with the critique, up to ``max_rewrites`` times, each rewrite
   checked for duplicates and scored again. Still under the bar: rejected with the scores.

Accepted drafts become :class:`~pipelines.core.schema.Query` records (source ``synthetic``, id
``syn-<category>-<n>``, a ``tests`` verifier with the checks, the starting files inline) with the
drafts, scores and seed examples in provenance. Every rejection is counted by kind with its detail.
Writes ``data/queries/synthetic.jsonl`` (possibly empty) and ``metrics/synthesize.json``; logs an
MLflow run. With the embedded 135M model most drafts fail validation: the report says why.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pydantic import ValidationError

from pipelines.core.console import main_guard, progress
from pipelines.curation.minhash import jaccard, shingle_set
from pipelines.core.io import atomic_write_json, atomic_write_text
from pipelines.llm.base import ContextLengthError
from pipelines.llm.roles import model_for_role
from pipelines.core.params import SynthesizeParams, load_params
from pipelines.core.paths import repo_root
from pipelines.core.schema import Query, VerifierSpec, WorkspaceSpec
from pipelines.core.seeds import load_seed_tasks
from pipelines.core.taxonomy import CATEGORIES, CATEGORY_DESCRIPTIONS, CATEGORY_DOMAIN, DOMAINS

log = logging.getLogger("pipelines.synthesize")
PROMPT_VERSION = "synth-v1"
RUBRIC: dict[str, str] = {
    "realism": "would a real user type this request to a coding or research assistant? "
               "1 = contrived or nonsensical, 5 = something people really ask",
    "specificity": "does it say exactly what to produce (files, names, formats, numbers)? "
                   "1 = vague, 5 = one unambiguous outcome",
    "verifiability": "do the checks decide success: they fail on the starting files, pass after a correct "
                     "solution, and need only python3 stdlib, bash and coreutils? 1 = unrelated or always "
                     "pass, 5 = they pin the requested behaviour",
    "difficulty": "1 = a trivial one-liner, 3 = several steps for a competent engineer, "
                  "5 = substantial multi-step work that still fits a small workspace",
}
#: Rejection kinds, in the order a draft meets them; each dropped draft counts under exactly one.
REJECTIONS = ("teacher_invalid", "duplicate_of_seed", "duplicate_of_accepted", "critic_invalid",
              "rewrite_invalid", "below_bar")
MIN_QUERY_WORDS = 8
MAX_QUERY_CHARS = 4000
MAX_CHECKS = 12
MAX_WORKSPACE_CHARS = 20_000  # "small starting files": larger ones belong in a seed folder, not a JSON argument
EXAMPLE_FILE_CHARS = 240  # seed files are shortened in few-shot examples to keep the prompt small
OUTPUT_CHARS = 300  # of a failed call's raw output, kept in the report to show what the model wrote
# Tools the sandbox lacks (no network, no packages beyond python3's stdlib); collect's verification
# would fail on them anyway, so they are caught here where the teacher can still be asked again.
_UNAVAILABLE = re.compile(r"(?<![\w./-])(pip3?|npm|npx|node|yarn|curl|wget|pytest|sudo|apt|apt-get|docker)(?![\w-])"
                          r"|\bimport\s+(numpy|pandas|requests|yaml|pytest)\b|\bfrom\s+(numpy|pandas|requests)\b")
_TRIVIAL = re.compile(r"^\s*(true|:|exit\s+0|echo\b[^|;&]*)\s*$")

SUBMIT_TASK_TOOL = {"type": "function", "function": {
    "name": "submit_task",
    "description": "Submit one task for an AI assistant, with the files it starts from and the checks that verify it.",
    "parameters": {"type": "object", "additionalProperties": False,
                   "required": ["query", "category", "domain", "workspace_files", "checks"],
                   "properties": {
                       "query": {"type": "string", "description": "the request, as the user would type it"},
                       "category": {"type": "string", "enum": list(CATEGORIES)},
                       "domain": {"type": "string", "enum": list(DOMAINS)},
                       "workspace_files": {"type": "object", "additionalProperties": {"type": "string"},
                                           "description": "relative path -> content of the starting files "
                                                          "(may be empty)"},
                       "checks": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                                  "description": "shell commands run in the workspace; each one check, passing on "
                                                 "exit status 0; python3 stdlib, bash and coreutils only"}}}}}

SUBMIT_SCORES_TOOL = {"type": "function", "function": {
    "name": "submit_scores",
    "description": "Submit the rubric scores (integers 1-5) for the task and short notes on what to improve.",
    "parameters": {"type": "object", "additionalProperties": False, "required": [*RUBRIC, "notes"],
                   "properties": {**{k: {"type": "integer", "minimum": 1, "maximum": 5, "description": d}
                                     for k, d in RUBRIC.items()},
                                  "notes": {"type": "string", "description": "one or two sentences"}}}}}

DRAFT_PROMPT = """You write tasks for an AI assistant that works in a terminal, in a small folder of files.
Write one new task of category {category} ({description}), domain {domain}.

A good task is a request a real person would type, names exactly what to produce, and comes with
shell checks that decide whether it was done: each check is one command run in the task's folder,
passing on exit status 0, using only python3 (standard library), bash and coreutils. Include the
starting files the task needs (small; none if the task starts from an empty folder).

Examples of real tasks, as submit_task arguments (long files are shortened here with " ..."; write yours in full):
{examples}
{avoid}
Write a different task from the examples. Call submit_task with query, category "{category}", domain "{domain}",
workspace_files and checks."""

REWRITE_PROMPT = """You write tasks for an AI assistant that works in a terminal, in a small folder of files.
A reviewer scored your task of category {category} ({description}), domain {domain}, from 1 to 5:
{scores}
Reviewer's notes: {notes}

Your task, as submit_task arguments:
{draft}

Rewrite it to fix what the reviewer found: keep it a realistic request, make the expected result exact,
and make the checks (python3 standard library, bash and coreutils only) fail before the work and pass after it.
Call submit_task with the improved query, category "{category}", domain "{domain}", workspace_files and checks."""

CRITIC_PROMPT = """Review a task written for an AI assistant that works in a terminal, in a small folder of files.
The checks are shell commands run in that folder after the assistant is done; each passes on exit status 0.

Task (category {category}, domain {domain}):
{draft}

Score it from 1 (worst) to 5 (best) on each criterion:
{rubric}

Call submit_scores with the four integer scores and short notes saying what to improve."""


@dataclass
class Draft:
    """A validated ``submit_task`` answer."""

    query: str
    category: str
    domain: str
    workspace_files: dict[str, str]
    checks: list[str]

    def arguments(self, file_chars: int | None = None) -> str:
        """The draft as the JSON arguments of ``submit_task`` (file contents cut at ``file_chars``)."""
        files = {p: _shorten(c, file_chars) for p, c in self.workspace_files.items()}
        return json.dumps({"query": self.query, "category": self.category, "domain": self.domain,
                           "workspace_files": files, "checks": self.checks}, indent=1, ensure_ascii=False)


@dataclass
class Review:
    """A validated ``submit_scores`` answer."""

    scores: dict[str, int]
    notes: str

    def score(self, rule: str) -> float:
        """The draft's score under ``rule``: the lowest of the four ("min") or their average ("mean")."""
        values = list(self.scores.values())
        return float(min(values)) if rule == "min" else sum(values) / len(values)


@dataclass
class Answer:
    """The validated value of a function call, or the last problem and the start of the last output."""

    value: Any = None
    problem: str = "no answer"
    output: str = ""


@dataclass
class Outcome:
    """What became of one draft slot: a Query, or the rejection kind and its detail."""

    category: str
    domain: str
    slot: int
    seed_examples: list[str]
    draft: Draft | None = None
    score: float | None = None
    query: Query | None = None
    rejection: str | None = None
    detail: str = ""
    drafts: list[dict[str, Any]] = field(default_factory=list)
    rewrites: int = 0
    last_output: str = ""


class CallCounter:
    """Function-call requests per role and the model seconds they took (for the report)."""

    def __init__(self) -> None:
        self.calls: Counter = Counter()
        self.seconds: Counter = Counter()

    def add(self, role: str, seconds: float) -> None:
        self.calls[role] += 1
        self.seconds[role] += seconds


def resolve_targets(p: SynthesizeParams) -> list[tuple[str, str]]:
    """``(domain, category)`` pairs to draft for, capped at ``max_categories``.

    No targets in params means every category with its default domain, the domains alternating
    (software, research, software, ...) so that a capped run still covers both.
    """
    if p.targets:
        pairs = [(t.domain or CATEGORY_DOMAIN[t.category], t.category) for t in p.targets]
    else:
        by_domain = {d: [c for c in CATEGORIES if CATEGORY_DOMAIN[c] == d] for d in DOMAINS}
        pairs = []
        for i in range(max(len(cs) for cs in by_domain.values())):
            pairs += [(d, cs[i]) for d, cs in by_domain.items() if i < len(cs)]
    return pairs[:p.max_categories] if p.max_categories else pairs


def pick_examples(seeds: list[Query], category: str, domain: str, k: int, slot: int) -> list[Query]:
    """``k`` seed tasks for few-shot: the category's own first (rotated by ``slot`` so drafts differ),
    then the same domain's, then any."""
    own = [s for s in seeds if s.category == category]
    if own:
        own = own[slot % len(own):] + own[:slot % len(own)]
    same_domain = [s for s in seeds if s.category != category and s.domain == domain]
    rest = [s for s in seeds if s.domain != domain]
    return (own + same_domain + rest)[:k]


def example_arguments(seed: Query, root: Path) -> str:
    """A seed task rendered as the ``submit_task`` arguments a teacher should produce."""
    files: dict[str, str] = dict(seed.workspace.files)
    if seed.workspace.dir:
        base = Path(seed.workspace.dir)
        base = base if base.is_absolute() else root / base
        for path in sorted(base.rglob("*")) if base.is_dir() else []:
            if path.is_file() and path.name != ".keep" and "__pycache__" not in path.parts:
                files.setdefault(path.relative_to(base).as_posix(), path.read_text(encoding="utf-8", errors="replace"))
    draft = Draft(seed.query, seed.category, seed.domain, files, list(seed.verifier.commands))
    return draft.arguments(EXAMPLE_FILE_CHARS)


def _shorten(text: str, limit: int | None) -> str:
    return text if limit is None or len(text) <= limit else text[:limit].rstrip() + " ..."


Validator = Callable[[dict[str, Any]], tuple[Any, str | None]]


def call_function(model, prompt: str, tool: dict[str, Any], validate: Validator, p: SynthesizeParams,
                  counter: CallCounter, role: str) -> Answer:
    """Ask ``model`` to call ``tool`` until ``validate`` accepts the arguments, at most ``p.attempts`` times.

    The first attempt samples with the model's own settings (greedy by default); later ones at
    ``retry_temperature`` with a new seed, since a greedy retry would repeat the same answer.
    """
    name = tool["function"]["name"]
    answer = Answer()
    for attempt in range(p.attempts):
        sampling: dict[str, Any] = {"max_tokens": p.max_tokens, "parallel_tool_calls": False, "seed": attempt,
                                    "tool_choice": {"type": "function", "function": {"name": name}}}
        if attempt:
            sampling["temperature"] = p.retry_temperature
        started = time.perf_counter()
        try:
            reply = model.chat([{"role": "user", "content": prompt}], [tool], **sampling)
        except ContextLengthError as exc:  # the prompt will not shrink on a retry
            counter.add(role, time.perf_counter() - started)
            return Answer(problem=f"context too long: {exc}")
        counter.add(role, reply.usage.seconds or (time.perf_counter() - started))
        functions = [c["function"] for c in reply.tool_calls]
        written = reply.raw if reply.raw is not None else json.dumps(functions) if functions else reply.content
        answer.output = _shorten(written, OUTPUT_CHARS)
        if reply.format_error and reply.finish_reason == "length":
            answer.problem = f"output cut at max_tokens={p.max_tokens} inside the function call"
            continue
        if reply.format_error:
            answer.problem = f"unparsable function call: {reply.format_error}"
            continue
        calls = [c for c in reply.tool_calls if c["function"]["name"] == name]
        if not calls:
            answer.problem = f"did not call {name}"
            continue
        args = calls[0]["function"]["arguments"]
        value, problem = validate(args) if isinstance(args, dict) else (None, "arguments are not a JSON object")
        if problem is None:
            return Answer(value, "", answer.output)
        answer.problem = problem
    return answer


def validate_task(category: str, domain: str) -> Validator:
    """A validator of ``submit_task`` arguments for a draft of ``category`` in ``domain``."""

    def validate(args: dict[str, Any]) -> tuple[Draft | None, str | None]:
        query = args.get("query")
        if not isinstance(query, str) or len(query.split()) < MIN_QUERY_WORDS:
            return None, f"query missing or shorter than {MIN_QUERY_WORDS} words"
        if len(query) > MAX_QUERY_CHARS:
            return None, f"query longer than {MAX_QUERY_CHARS} characters"
        if args.get("category") != category:
            return None, f"category {args.get('category')!r} instead of {category!r}"
        if args.get("domain") != domain:
            return None, f"domain {args.get('domain')!r} instead of {domain!r}"
        files = args.get("workspace_files", None)
        if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            return None, "workspace_files is not an object of path -> text"
        if sum(len(v) for v in files.values()) > MAX_WORKSPACE_CHARS:
            return None, f"workspace_files over {MAX_WORKSPACE_CHARS} characters"
        try:
            WorkspaceSpec(files=files)
        except ValidationError as exc:
            return None, exc.errors()[0]["msg"].removeprefix("Value error, ")
        checks = args.get("checks")
        if not isinstance(checks, list) or not checks or not all(isinstance(c, str) and c.strip() for c in checks):
            return None, "checks is not a non-empty list of shell commands"
        if len(checks) > MAX_CHECKS:
            return None, f"more than {MAX_CHECKS} checks"
        for check in checks:
            if _TRIVIAL.match(check):
                return None, f"check {_shorten(check, 60)!r} always passes"
            bad = _UNAVAILABLE.search(check)
            if bad:
                return None, f"check {_shorten(check, 60)!r} needs {bad.group(0)!r}, which the sandbox lacks"
        extra = set(args) - {"query", "category", "domain", "workspace_files", "checks"}
        if extra:
            return None, f"unknown argument(s) {', '.join(sorted(extra))}"
        return Draft(query.strip(), category, domain, files, [c.strip() for c in checks]), None

    return validate


def validate_scores(args: dict[str, Any]) -> tuple[Review | None, str | None]:
    """``submit_scores`` arguments as a Review: four integers 1-5; notes a string (may be left out)."""
    scores = {}
    for key in RUBRIC:
        value = args.get(key)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 5:
            return None, f"{key} is {value!r}, not an integer from 1 to 5"
        scores[key] = value
    notes = args.get("notes", "")
    if not isinstance(notes, str):
        return None, "notes is not a string"
    return Review(scores, notes.strip()), None


class NearDuplicates:
    """Queries seen so far (seeds, then accepted drafts) and their word 3-gram shingle sets.

    Compared exactly rather than through MinHash: the reference set is small (tens to thousands of
    texts), so exact Jaccard costs microseconds and has no estimation error near the threshold.
    """

    def __init__(self, threshold: float):
        self.threshold = threshold
        self._known: list[tuple[str, str, np.ndarray]] = []  # (kind, id, shingles)

    def add(self, kind: str, id_: str, text: str) -> None:
        """Remember ``text`` under ``id_``; ``kind`` ("seed", "accepted") names the rejection it causes."""
        self._known.append((kind, id_, shingle_set(text, ngram=3)))

    def match(self, text: str) -> tuple[str, str, float] | None:
        """``(kind, id, Jaccard)`` of the most similar known query when it reaches the threshold, else None."""
        shingles = shingle_set(text, ngram=3)
        best = max(((k, i, jaccard(shingles, s)) for k, i, s in self._known), key=lambda x: x[2], default=None)
        return best if best is not None and best[2] >= self.threshold else None


def synthesize_slot(teacher, critic, p: SynthesizeParams, category: str, domain: str, slot: int,
                    examples: list[Query], accepted_texts: list[str], index: NearDuplicates, root: Path,
                    counter: CallCounter) -> Outcome:
    """Draft, check, score and rewrite one task; the Outcome holds the accepted draft or why it was dropped."""
    outcome = Outcome(category, domain, slot, [s.id for s in examples])
    description = CATEGORY_DESCRIPTIONS[category]
    avoid = "".join(f"- {_shorten(t, 160)}\n" for t in accepted_texts[-5:])
    prompt = DRAFT_PROMPT.format(
        category=category, description=description, domain=domain,
        examples="\n".join(example_arguments(s, root) for s in examples) or "(none)",
        avoid=f"\nAlready written for this category (write something else):\n{avoid}" if avoid else "")
    validate = validate_task(category, domain)
    answer = call_function(teacher, prompt, SUBMIT_TASK_TOOL, validate, p, counter, "teacher")
    if answer.value is None:
        return _reject(outcome, "teacher_invalid", answer)
    draft: Draft = answer.value
    while True:
        dup = index.match(draft.query)
        if dup is not None:
            kind, id_, similarity = dup
            return _reject(outcome, f"duplicate_of_{kind}",
                           Answer(problem=f"{id_} (Jaccard {similarity:.2f} >= {p.dup_threshold})"))
        prompt = CRITIC_PROMPT.format(category=category, domain=domain, draft=draft.arguments(1500),
                                      rubric="\n".join(f"- {k}: {d}" for k, d in RUBRIC.items()))
        answer = call_function(critic, prompt, SUBMIT_SCORES_TOOL, validate_scores, p, counter, "critic")
        if answer.value is None:
            outcome.drafts.append({"text": draft.query, "scores": None, "notes": ""})
            return _reject(outcome, "critic_invalid", answer)
        review: Review = answer.value
        score = review.score(p.score_rule)
        outcome.drafts.append({"text": draft.query, "scores": review.scores, "notes": review.notes})
        if score >= p.min_score:
            outcome.draft, outcome.score = draft, score
            return outcome
        if outcome.rewrites >= p.max_rewrites:
            return _reject(outcome, "below_bar", Answer(problem=f"{p.score_rule} score {score:.2f} < {p.min_score} "
                           f"after {outcome.rewrites} rewrite(s) ({_scores_text(review.scores)})"))
        prompt = REWRITE_PROMPT.format(category=category, description=description, domain=domain,
                                       scores=_scores_text(review.scores), notes=review.notes or "(none)",
                                       draft=draft.arguments(1500))
        outcome.rewrites += 1
        answer = call_function(teacher, prompt, SUBMIT_TASK_TOOL, validate, p, counter, "teacher")
        if answer.value is None:
            return _reject(outcome, "rewrite_invalid", answer)
        draft = answer.value


def _reject(outcome: Outcome, kind: str, answer: Answer) -> Outcome:
    outcome.rejection, outcome.detail, outcome.last_output = kind, answer.problem, answer.output
    return outcome


def _scores_text(scores: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in scores.items())


def to_query(outcome: Outcome, number: int, teacher: str, critic: str, score_rule: str) -> Query:
    """The accepted draft of ``outcome`` as Query ``syn-<category>-<number>``, its history in provenance."""
    draft = outcome.draft
    assert draft is not None
    return Query(id=f"syn-{draft.category}-{number}", source="synthetic", domain=draft.domain,
                 category=draft.category, query=draft.query, workspace=WorkspaceSpec(files=draft.workspace_files),
                 verifier=VerifierSpec(kind="tests", commands=draft.checks),
                 provenance={"teacher": teacher, "critic": critic, "prompt_version": PROMPT_VERSION,
                             "drafts": outcome.drafts, "rewrites": outcome.rewrites,
                             "seed_examples": outcome.seed_examples, "score": outcome.score, "score_rule": score_rule})


def synthesize(p: SynthesizeParams, teacher, critic, seeds: list[Query], out: Path, metrics_path: Path,
               root: Path | None = None, tracker=None) -> dict[str, Any]:
    """Draft ``p.per_category`` tasks per target; write the accepted queries and the report; return the report.

    ``teacher`` and ``critic`` are chat models (``pipelines.llm``); ``seeds`` are the few-shot examples and
    the first near-duplicate references; ``root`` resolves the seeds' workspace folders (default: repo root).
    """
    root = root or repo_root()
    started = time.perf_counter()
    index = NearDuplicates(p.dup_threshold)
    for seed in seeds:
        index.add("seed", seed.id, seed.query)
    targets = resolve_targets(p)
    counter = CallCounter()
    accepted: list[Query] = []
    outcomes: list[Outcome] = []
    numbers: Counter = Counter()
    slots = [(d, c, i) for d, c in targets for i in range(p.per_category)]
    for domain, category, slot in progress(slots, desc="synthesize", unit="draft"):
        examples = pick_examples(seeds, category, domain, p.few_shot, slot)
        earlier = [q.query for q in accepted if q.category == category]
        outcome = synthesize_slot(teacher, critic, p, category, domain, slot, examples, earlier, index, root, counter)
        if outcome.draft is not None:
            numbers[category] += 1
            outcome.query = to_query(outcome, numbers[category], _name(teacher), _name(critic), p.score_rule)
            accepted.append(outcome.query)
            index.add("accepted", outcome.query.id, outcome.query.query)
        else:
            log.info("%s #%d dropped: %s: %s", category, slot + 1, outcome.rejection, outcome.detail)
        outcomes.append(outcome)
    report = build_report(p, targets, outcomes, counter, _name(teacher), _name(critic), time.perf_counter() - started)
    atomic_write_text(out, "".join(q.model_dump_json() + "\n" for q in accepted))
    atomic_write_json(metrics_path, report)
    if tracker is not None:
        tracker.log_metrics({"requested": report["requested"], "accepted": report["accepted"],
                             "acceptance_rate": report["acceptance_rate"], "rewrites": report["rewrites"],
                             **{f"rejected.{k}": v for k, v in report["rejections"].items()},
                             **{f"accepted.{c}": v["accepted"] for c, v in report["per_category"].items()}})
        tracker.log_artifact(metrics_path)
    return report


def build_report(p: SynthesizeParams, targets: list[tuple[str, str]], outcomes: list[Outcome], counter: CallCounter,
                 teacher: str, critic: str, seconds: float) -> dict[str, Any]:
    """Counts per category, acceptance rate, rejections by kind (every kind listed) and each drop's detail."""
    per_category: dict[str, dict[str, Any]] = {}
    for domain, category in targets:
        row = per_category.setdefault(category, {"domain": domain, "requested": 0, "accepted": 0, "rejected": 0})
        mine = [o for o in outcomes if o.category == category and o.domain == domain]
        row["requested"] += len(mine)
        row["accepted"] += sum(o.query is not None for o in mine)
        row["rejected"] += sum(o.query is None for o in mine)
    accepted = sum(o.query is not None for o in outcomes)
    rejections = Counter(o.rejection for o in outcomes if o.rejection)
    details = Counter(f"{o.rejection}: {o.detail}" for o in outcomes if o.rejection)
    return {
        "requested": len(outcomes), "accepted": accepted, "rejected": len(outcomes) - accepted,
        "acceptance_rate": round(accepted / len(outcomes), 4) if outcomes else 0.0,
        "per_category": per_category,
        "rejections": {kind: rejections.get(kind, 0) for kind in REJECTIONS},
        "top_reasons": [{"reason": r, "count": n} for r, n in details.most_common(10)],
        "rewrites": sum(o.rewrites for o in outcomes),
        "accepted_after_rewrite": sum(o.query is not None and o.rewrites > 0 for o in outcomes),
        "dropped": [{"category": o.category, "domain": o.domain, "slot": o.slot + 1, "kind": o.rejection,
                     "reason": o.detail, "last_output": o.last_output, "drafts": o.drafts}
                    for o in outcomes if o.rejection],
        "calls": dict(counter.calls), "model_seconds": {k: round(v, 1) for k, v in counter.seconds.items()},
        "seconds": round(seconds, 1), "teacher": teacher, "critic": critic, "prompt_version": PROMPT_VERSION,
        "score_rule": p.score_rule, "min_score": p.min_score, "dup_threshold": p.dup_threshold,
    }


def _name(model) -> str:
    return getattr(model, "name", type(model).__name__)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.synthesize", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="data/seeds")
    parser.add_argument("--out", default="data/queries/synthetic.jsonl")
    parser.add_argument("--metrics", default="metrics/synthesize.json")
    args = parser.parse_args()
    root = repo_root()
    params = load_params()
    resolve = lambda p: Path(p) if Path(p).is_absolute() else root / p  # noqa: E731
    seeds = load_seed_tasks(resolve(args.seeds))
    teacher = model_for_role(params.llm, "teacher")
    critic = model_for_role(params.llm, "critic")
    from pipelines.core.tracking import stage_run

    with stage_run("synthesize", params.group("synthesize")) as run:
        report = synthesize(params.synthesize, teacher, critic, seeds, resolve(args.out), resolve(args.metrics),
                            root=root, tracker=run)
    reasons = ", ".join(f"{k} {v}" for k, v in report["rejections"].items() if v) or "none"
    log.info("%d of %d drafts accepted (%.0f%%) in %.0fs; rejected: %s; details in %s", report["accepted"],
             report["requested"], 100 * report["acceptance_rate"], report["seconds"], reasons, args.metrics)
    return 0


if __name__ == "__main__":
    main_guard(main)
