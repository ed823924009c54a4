"""The critic's side: the rubric, the ``submit_scores`` function and its validation, the rewrite request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.core.taxonomy import CATEGORY_DESCRIPTIONS
from pipelines.synthesis.drafting import Draft

REVIEW_FILE_CHARS = 1500  # of each starting file, shown to the critic and in a rewrite request
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

SUBMIT_SCORES_TOOL = {"type": "function", "function": {
    "name": "submit_scores",
    "description": "Submit the rubric scores (integers 1-5) for the task and short notes on what to improve.",
    "parameters": {"type": "object", "additionalProperties": False, "required": [*RUBRIC, "notes"],
                   "properties": {**{k: {"type": "integer", "minimum": 1, "maximum": 5, "description": d}
                                     for k, d in RUBRIC.items()},
                                  "notes": {"type": "string", "description": "one or two sentences"}}}}}

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
class Review:
    """A validated ``submit_scores`` answer."""

    scores: dict[str, int]
    notes: str

    def score(self, rule: str) -> float:
        """The draft's score under ``rule``: the lowest of the four ("min") or their average ("mean")."""
        values = list(self.scores.values())
        return float(min(values)) if rule == "min" else sum(values) / len(values)


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


def critic_prompt(draft: Draft) -> str:
    """The critic's request to score ``draft`` on the rubric."""
    return CRITIC_PROMPT.format(category=draft.category, domain=draft.domain, draft=draft.arguments(REVIEW_FILE_CHARS),
                                rubric="\n".join(f"- {k}: {d}" for k, d in RUBRIC.items()))


def rewrite_prompt(draft: Draft, review: Review) -> str:
    """The teacher's request to rewrite ``draft`` so that it answers the critic's ``review``."""
    return REWRITE_PROMPT.format(category=draft.category, description=CATEGORY_DESCRIPTIONS[draft.category],
                                 domain=draft.domain, scores=scores_text(review.scores),
                                 notes=review.notes or "(none)", draft=draft.arguments(REVIEW_FILE_CHARS))


def scores_text(scores: dict[str, int]) -> str:
    """``"realism 4, specificity 3, ..."``: the scores as the rewrite request and the report show them."""
    return ", ".join(f"{k} {v}" for k, v in scores.items())
