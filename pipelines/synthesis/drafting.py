"""The teacher's side: the ``submit_task`` function, its validation and the seed examples it is shown."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipelines.core.schema import Query, WorkspaceSpec
from pipelines.core.taxonomy import CATEGORIES, CATEGORY_DESCRIPTIONS, DOMAINS
from pipelines.synthesis.calls import Validator, shorten

PROMPT_VERSION = "synth-v1"
MIN_QUERY_WORDS = 8
MAX_QUERY_CHARS = 4000
MAX_CHECKS = 12
MAX_WORKSPACE_CHARS = 20_000  # "small starting files": larger ones belong in a seed folder, not a JSON argument
EXAMPLE_FILE_CHARS = 240  # seed files are shortened in few-shot examples to keep the prompt small
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
        files = {p: shorten(c, file_chars) for p, c in self.workspace_files.items()}
        return json.dumps({"query": self.query, "category": self.category, "domain": self.domain,
                           "workspace_files": files, "checks": self.checks}, indent=1, ensure_ascii=False)


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


def draft_prompt(category: str, domain: str, examples: list[Query], accepted_texts: list[str], root: Path) -> str:
    """The teacher's request for a new task of ``category`` in ``domain``, with the seed ``examples`` as
    ``submit_task`` arguments and the last few ``accepted_texts`` of the category to steer away from."""
    avoid = "".join(f"- {shorten(t, 160)}\n" for t in accepted_texts[-5:])
    return DRAFT_PROMPT.format(
        category=category, description=CATEGORY_DESCRIPTIONS[category], domain=domain,
        examples="\n".join(example_arguments(s, root) for s in examples) or "(none)",
        avoid=f"\nAlready written for this category (write something else):\n{avoid}" if avoid else "")


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
                return None, f"check {shorten(check, 60)!r} always passes"
            bad = _UNAVAILABLE.search(check)
            if bad:
                return None, f"check {shorten(check, 60)!r} needs {bad.group(0)!r}, which the sandbox lacks"
        extra = set(args) - {"query", "category", "domain", "workspace_files", "checks"}
        if extra:
            return None, f"unknown argument(s) {', '.join(sorted(extra))}"
        return Draft(query.strip(), category, domain, files, [c.strip() for c in checks]), None

    return validate
