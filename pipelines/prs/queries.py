"""From a pull request to a developer-style query: the teacher's prompt, its validated answer, the Query record.

The teacher sees the title, body and file list, never the patch's lines; it answers by calling
``submit_query``. LIMI's additions follow when switched on (:func:`additions`): the hint naming the
files to modify and the sentence allowing or forbidding installs. The verifier is the PR's own tests or
the judged comparison with the gold patch (:mod:`pipelines.prs.verification`, chosen before the request is
written) and the workspace is the repository at the PR's base commit.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.core.console import progress
from pipelines.core.errors import ModelError
from pipelines.prs.config import PRQueriesParams
from pipelines.core.schema import Query, WorkspaceSpec
from pipelines.core.taxonomy import CATEGORIES, CATEGORY_DESCRIPTIONS
from pipelines.prs.records import PullRequest
from pipelines.prs.verification import PatchDoesNotApply, VerifierChoice, choose_verifier, git_source, is_local, \
    judged_spec, split_files

PROMPT_VERSION = "pr-query-v1"

SUBMIT_TOOL = {"type": "function", "function": {
    "name": "submit_query",
    "description": "Submit the developer's request for this change.",
    "parameters": {"type": "object", "additionalProperties": False, "required": ["query", "category", "modified_files"],
                   "properties": {
                       "query": {"type": "string", "description": "the request, as the developer would type it"},
                       "category": {"type": "string", "enum": list(CATEGORIES)},
                       "modified_files": {"type": "array", "items": {"type": "string"}},
                       "related_files": {"type": "array", "items": {"type": "string"}}}}}}

PROMPT = """A pull request was merged in the repository {repo}. Write the request a developer would have typed
to an AI coding assistant to get this change made, in the first person, naming the behaviour wanted and
the files involved, without pasting code and without saying that a pull request exists.

Title: {title}
Description: {body}
Files changed ({n_files}): {files}

Categories: {categories}

Call submit_query with the request, the category, the modified files and any related files."""


def ask_teacher(teacher, pr: PullRequest, attempts: int, max_tokens: int = 256) -> tuple[dict[str, Any] | None, str]:
    """The teacher's validated ``submit_query`` arguments, or None and the last problem."""
    prompt = PROMPT.format(repo=pr.repo, title=pr.title, body=(pr.body or "(none)")[:2000], n_files=len(pr.files),
                           files=", ".join(f.path for f in pr.files[:30]),
                           categories="; ".join(f"{c}: {d}" for c, d in CATEGORY_DESCRIPTIONS.items()))
    problem = "no answer"
    for attempt in range(attempts):
        try:
            reply = teacher.chat([{"role": "user", "content": prompt}], [SUBMIT_TOOL],
                                 tool_choice={"type": "function", "function": {"name": "submit_query"}},
                                 parallel_tool_calls=False, seed=attempt, max_tokens=max_tokens)
        except ModelError as exc:  # an outage costs this PR its teacher answer, not the whole stage
            problem = f"teacher failed: {exc}"
            continue
        if reply.format_error:
            problem = reply.format_error
            continue
        calls = [c for c in reply.tool_calls if c["function"]["name"] == "submit_query"]
        if not calls:
            problem = "the teacher did not call submit_query"
            continue
        args = calls[0]["function"]["arguments"]
        problem = _invalid(args, pr)
        if problem is None:
            return args, ""
    return None, problem


def _invalid(args: dict[str, Any], pr: PullRequest) -> str | None:
    query = args.get("query")
    if not isinstance(query, str) or len(query.split()) < 5:
        return "query missing or shorter than five words"
    if args.get("category") not in CATEGORIES:
        return f"category {args.get('category')!r} is not one of the taxonomy's"
    files = args.get("modified_files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return "modified_files is not a list of paths"
    leaked = _leaked_patch_line(query, pr)
    if leaked:
        return f"the query copies a line of the patch ({leaked[:60]!r})"
    return None


def _leaked_patch_line(query: str, pr: PullRequest) -> str | None:
    """An added line of the gold patch (of some length) that appears verbatim in the query."""
    for f in pr.files:
        for line in (f.patch or "").splitlines():
            body = line[1:].strip()
            if line.startswith("+") and len(body) >= 25 and body in query:
                return body
    return None


def template_query(pr: PullRequest, files: list[str] | None = None) -> dict[str, Any]:
    """A plain request composed from the title and body when no teacher answer is usable; it names ``files``
    (default: every file of the PR) as where the change goes."""
    paragraph = re.split(r"\n\s*\n", (pr.body or "").strip())[0] if pr.body else ""
    files = list(files) if files is not None else [f.path for f in pr.files]
    text = f"{pr.title.rstrip('.')}." + (f" {paragraph}" if paragraph else "")
    text += f" The change should be made in {', '.join(files[:5])}{' and related files' if len(files) > 5 else ''}."
    return {"query": text, "category": "codebase_debugging" if re.search(r"\bfix", pr.title, re.I)
            else "application_development", "modified_files": files, "related_files": []}


def modify_hint(pr: PullRequest, files: list[str] | None = None) -> str:
    """LIMI's "You only need to modify <files>." with the files of the gold patch (binary files left out), or
    ``files`` when given (a task verified by its hidden tests: the code part only)."""
    if files is None:
        files = [f.path for f in pr.files if not f.binary] or [f.path for f in pr.files]
    listed = files[0] if len(files) == 1 else f"{', '.join(files[:-1])} and {files[-1]}"
    return f"You only need to modify {listed}."


def install_choice(pr: PullRequest, params: PRQueriesParams) -> str | None:
    """``allow``, ``forbid`` or None: which install sentence this PR's query gets.

    Drawn from a generator seeded by ``install.seed`` and the PR's key, so the same PR always gets the
    same answer, whatever other PRs are in the run and in whatever order.
    """
    install = params.install
    if not install.enabled:
        return None
    rng = random.Random(f"{install.seed}:{pr.key}")
    if rng.random() >= install.probability:
        return None
    return "allow" if rng.random() < install.allow_share else "forbid"


def additions(pr: PullRequest, params: PRQueriesParams, files: list[str] | None = None
              ) -> tuple[list[str], dict[str, Any]]:
    """The sentences LIMI appends to a PR's request (the hint naming ``files``, default the PR's), and what
    provenance records about them."""
    sentences: list[str] = []
    record: dict[str, Any] = {}
    if params.modify_hint:
        sentences.append(modify_hint(pr, files))
        record["modify_hint"] = True
    choice = install_choice(pr, params)
    if choice is not None:
        sentences.append(params.install.allow if choice == "allow" else params.install.forbid)
    if params.install.enabled:
        record["install_sentence"] = choice
    return sentences, record


def solution_files(pr: PullRequest, choice: VerifierChoice | None) -> list[str] | None:
    """The files the agent is meant to change: the code part when the hidden tests verify the task (the test
    files are the verifier's), else None (every file of the PR)."""
    if choice is None or not choice.by_tests:
        return None
    code, _ = split_files([f for f in pr.files if not f.binary])
    return [f.path for f in code]


def to_query(pr: PullRequest, answer: dict[str, Any], writer: str, root: Path,
             params: PRQueriesParams | None = None, choice: VerifierChoice | None = None) -> Query:
    """The Query record: workspace at the base commit, verifier as ``choice`` says (default: the judged
    comparison with the gold patch), its reason in provenance (``verifier_reason``).

    With ``params``, LIMI's additions (:func:`additions`) are appended to the request and noted in
    provenance. Provenance always names the repository (``repo``) and the PR (``pr``, ``repo#number``),
    which collect copies into every trajectory's meta.
    """
    params = params or PRQueriesParams()
    local = is_local(pr, root)
    name = Path(pr.repo).name if local else pr.repo
    name = name[:-len(".bundle")] if name.endswith(".bundle") else name
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-") or "repo"
    unit = str(pr.number) if pr.number is not None else pr.head_sha[:12]
    sentences, added = additions(pr, params, solution_files(pr, choice))
    text = answer["query"]
    if sentences:
        text = text.rstrip()
        text = " ".join([text if text.endswith((".", "!", "?")) else text + ".", *sentences])
    spec = choice.spec if choice is not None else judged_spec(pr, params)
    reason = {"verifier_reason": choice.reason} if choice is not None else {}
    return Query(
        id=f"pr-{slug}-{unit}", source="pr", domain="software", category=answer["category"], query=text,
        workspace=WorkspaceSpec(git=git_source(pr, root), commit=pr.base_sha), verifier=spec,
        provenance={"pr": pr.key, "url": pr.url, "repo": pr.repo, "number": pr.number, "head_sha": pr.head_sha,
                    "writer": writer, "prompt_version": PROMPT_VERSION,
                    "modified_files": answer.get("modified_files", []), "related_files": answer.get("related_files", []),
                    **reason, **added},
    )


@dataclass
class QueryBatch:
    """What :func:`write_queries` made: the queries, the PRs skipped (key -> problem), queries per writer and
    per verifier (``tests``, ``judge``), the judged ones' reasons, and seconds spent on environments and tests."""

    queries: list[Query] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    writers: Counter = field(default_factory=Counter)
    verified_by: Counter = field(default_factory=Counter)
    judge_reasons: Counter = field(default_factory=Counter)
    seconds: Counter = field(default_factory=Counter)


def write_queries(prs: list[PullRequest], teacher, params: PRQueriesParams, root: Path) -> QueryBatch:
    """A query per PR, in the PRs' order: its verifier chosen first (:func:`choose_verifier`), then the
    teacher's request, or with ``fallback: template`` a composed one.

    ``teacher`` may be None (unavailable). A PR whose patch does not apply at its base is skipped with that
    reason; a teacher that gives no usable answer skips the PR (its problem kept) unless the fallback composes one.
    """
    batch = QueryBatch()
    for pr in progress(prs, desc="pr_queries", unit="PR"):
        try:
            choice = choose_verifier(pr, params, root)
        except PatchDoesNotApply as exc:
            batch.skipped[pr.key] = str(exc)
            continue
        batch.seconds.update(choice.seconds)
        answer, problem = ask_teacher(teacher, pr, params.attempts, params.max_tokens) if teacher is not None \
            else (None, "no teacher")
        writer = getattr(teacher, "name", "teacher")
        if answer is None:
            if params.fallback != "template":
                batch.skipped[pr.key] = problem
                continue
            answer, writer = template_query(pr, solution_files(pr, choice)), "template"
        batch.queries.append(to_query(pr, answer, writer, root, params, choice))
        batch.writers[writer] += 1
        batch.verified_by["tests" if choice.by_tests else "judge"] += 1
        if not choice.by_tests:
            batch.judge_reasons[choice.reason] += 1
    return batch
