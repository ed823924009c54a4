"""The synthesis loop: for each slot, draft, check for duplicates, score, rewrite; then write the queries."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.core.console import progress
from pipelines.core.io import atomic_write_json, atomic_write_text
from pipelines.synthesis.config import SynthesizeParams
from pipelines.core.paths import repo_root
from pipelines.core.schema import Query, VerifierSpec, WorkspaceSpec
from pipelines.core.taxonomy import CATEGORIES, CATEGORY_DOMAIN, DOMAINS
from pipelines.synthesis.calls import Answer, CallCounter, call_function
from pipelines.synthesis.critique import (SUBMIT_SCORES_TOOL, Review, critic_prompt, rewrite_prompt, scores_text,
                                          validate_scores)
from pipelines.synthesis.drafting import (PROMPT_VERSION, SUBMIT_TASK_TOOL, Draft, draft_prompt, pick_examples,
                                          validate_task)
from pipelines.synthesis.near_duplicates import NearDuplicates
from pipelines.synthesis.report import build_report

log = logging.getLogger("pipelines.synthesize")


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


def synthesize_slot(teacher, critic, p: SynthesizeParams, category: str, domain: str, slot: int,
                    examples: list[Query], accepted_texts: list[str], index: NearDuplicates, root: Path,
                    counter: CallCounter) -> Outcome:
    """Draft, check, score and rewrite one task; the Outcome holds the accepted draft or why it was dropped."""
    outcome = Outcome(category, domain, slot, [s.id for s in examples])
    validate = validate_task(category, domain)
    prompt = draft_prompt(category, domain, examples, accepted_texts, root)
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
        answer = call_function(critic, critic_prompt(draft), SUBMIT_SCORES_TOOL, validate_scores, p, counter, "critic")
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
                           f"after {outcome.rewrites} rewrite(s) ({scores_text(review.scores)})"))
        outcome.rewrites += 1
        answer = call_function(teacher, rewrite_prompt(draft, review), SUBMIT_TASK_TOOL, validate, p, counter,
                               "teacher")
        if answer.value is None:
            return _reject(outcome, "rewrite_invalid", answer)
        draft = answer.value


def _reject(outcome: Outcome, kind: str, answer: Answer) -> Outcome:
    outcome.rejection, outcome.detail, outcome.last_output = kind, answer.problem, answer.output
    return outcome


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

    The report (``metrics_path``) is a function of the inputs; the seconds spent, in all and per model
    role, go to ``tracker.record_timings`` only.

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
    report = build_report(p, targets, outcomes, counter, _name(teacher), _name(critic))
    atomic_write_text(out, "".join(q.model_dump_json() + "\n" for q in accepted))
    atomic_write_json(metrics_path, report)
    if tracker is not None:
        tracker.log_metrics({"requested": report["requested"], "accepted": report["accepted"],
                             "acceptance_rate": report["acceptance_rate"], "rewrites": report["rewrites"],
                             **{f"rejected.{k}": v for k, v in report["rejections"].items()},
                             **{f"accepted.{c}": v["accepted"] for c, v in report["per_category"].items()}})
        tracker.log_artifact(metrics_path)
        tracker.record_timings({"seconds": round(time.perf_counter() - started, 1),
                                "model_seconds": {k: round(v, 1) for k, v in counter.seconds.items()}})
    return report


def _name(model) -> str:
    """The model's name for provenance: its ``name`` attribute, else its class name."""
    return getattr(model, "name", type(model).__name__)
