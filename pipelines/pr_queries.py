"""Stage ``pr_queries``: LIMI's PR path, from mined pull requests to developer-style queries.

``python -m pipelines.pr_queries [--prs data/prs/prs.jsonl] [--out data/queries/pr.jsonl]``

1. Filters (``params.yaml: pr_queries``), each drop counted by reason: PRs that only touch
   docs/markdown, binary-only changes, a patch over the token budget, more than one file when
   ``single_file`` is set, merged before the temporal cutoff, reverts, bot authors, a per-repo cap.
2. The teacher (``llm.roles.teacher``) writes the request a developer would type, from the title,
   body and file list only (never the patch's lines), plus the category, modified and related files,
   by calling a ``submit_query`` function whose arguments are validated. Invalid answers are retried;
   then the PR is skipped with the reason in the report, or, with ``fallback: template``, a plain
   request is composed from the title and body (marked ``writer: template`` in provenance).
3. The gold patch becomes the ``reference_patch`` verifier (never shown to the agent) and the
   workspace is the repository at the PR's base commit.

Writes ``data/queries/pr.jsonl`` and ``data/queries/pr_report.json``; logs an MLflow run.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

from pipelines.core.console import main_guard, progress
from pipelines.core.errors import ModelError, UserError
from pipelines.core.io import atomic_write_json, atomic_write_text
from pipelines.llm.roles import model_for_role
from pipelines.core.params import Params, PRQueriesParams, load_params
from pipelines.core.paths import repo_root
from pipelines.prs import PullRequest, read_prs, unified_diff
from pipelines.core.schema import Query, VerifierSpec, WorkspaceSpec
from pipelines.core.taxonomy import CATEGORIES, CATEGORY_DESCRIPTIONS

log = logging.getLogger("pipelines.pr_queries")
PROMPT_VERSION = "pr-query-v1"
DOC_SUFFIXES = (".md", ".rst", ".txt", ".adoc")
DOC_DIRS = ("docs/", "doc/")

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


def filter_reason(pr: PullRequest, params: PRQueriesParams, per_repo: Counter) -> str | None:
    """Why a PR is filtered out, or None to keep it."""
    text_files = [f for f in pr.files if not f.binary]
    if not text_files:
        return "binary or empty change"
    if all(f.path.endswith(DOC_SUFFIXES) or f.path.startswith(DOC_DIRS) for f in pr.files):
        return "docs or markdown only"
    if pr.is_revert:
        return "revert"
    if pr.is_bot:
        return "bot author"
    if params.single_file and len(pr.files) != 1:
        return "more than one file"
    if params.cutoff and (pr.merged_at or pr.created_at) and (pr.merged_at or pr.created_at).date() < params.cutoff:
        return "before the temporal cutoff"
    tokens = len(unified_diff(pr.files)) // 4  # ~4 characters a token for code and diffs
    if tokens > params.max_patch_tokens:
        return "patch over the token budget"
    if params.per_repo_cap and per_repo[pr.repo] >= params.per_repo_cap:
        return "per-repo cap reached"
    return None


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


def template_query(pr: PullRequest) -> dict[str, Any]:
    """A plain request composed from the title and body when no teacher answer is usable."""
    paragraph = re.split(r"\n\s*\n", (pr.body or "").strip())[0] if pr.body else ""
    files = [f.path for f in pr.files]
    text = f"{pr.title.rstrip('.')}." + (f" {paragraph}" if paragraph else "")
    text += f" The change should be made in {', '.join(files[:5])}{' and related files' if len(files) > 5 else ''}."
    return {"query": text, "category": "codebase_debugging" if re.search(r"\bfix", pr.title, re.I)
            else "application_development", "modified_files": files, "related_files": []}


def to_query(pr: PullRequest, answer: dict[str, Any], writer: str, root: Path) -> Query:
    """The Query record: workspace at the base commit, gold patch as the verifier's reference."""
    local = (root / pr.repo).exists() if not pr.repo.startswith(("http", "git@")) else False
    git = pr.repo if local or "://" in pr.repo else f"https://github.com/{pr.repo}.git"
    slug = re.sub(r"[^A-Za-z0-9]+", "-", Path(pr.repo).name if local else pr.repo).strip("-") or "repo"
    unit = str(pr.number) if pr.number is not None else pr.head_sha[:12]
    return Query(
        id=f"pr-{slug}-{unit}", source="pr", domain="software", category=answer["category"], query=answer["query"],
        workspace=WorkspaceSpec(git=git, commit=pr.base_sha),
        verifier=VerifierSpec(kind="reference_patch", patch=unified_diff(pr.files), pass_threshold=0.8),
        provenance={"pr": pr.key, "url": pr.url, "repo": pr.repo, "number": pr.number, "head_sha": pr.head_sha,
                    "writer": writer, "prompt_version": PROMPT_VERSION,
                    "modified_files": answer.get("modified_files", []), "related_files": answer.get("related_files", [])},
    )


def pr_queries(params: Params, root: Path, prs_path: Path, out: Path, report_path: Path, tracker=None) -> dict:
    """Filter, ask the teacher, write queries and the report; returns the report."""
    p = params.pr_queries
    prs = read_prs(prs_path)
    dropped: Counter = Counter()
    per_repo: Counter = Counter()
    kept: list[PullRequest] = []
    for pr in prs:
        reason = filter_reason(pr, p, per_repo)
        if reason:
            dropped[reason] += 1
        else:
            kept.append(pr)
            per_repo[pr.repo] += 1
    teacher = None
    if kept:
        try:
            teacher = model_for_role(params.llm, "teacher")
        except ModelError:
            if p.fallback != "template":
                raise
            log.warning("teacher unavailable; composing template queries")
    queries: list[Query] = []
    skipped: dict[str, str] = {}
    writers: Counter = Counter()
    for pr in progress(kept, desc="pr_queries", unit="PR"):
        answer, problem = ask_teacher(teacher, pr, p.attempts, p.max_tokens) if teacher is not None else (None, "no teacher")
        writer = getattr(teacher, "name", "teacher")
        if answer is None:
            if p.fallback != "template":
                skipped[pr.key] = problem
                continue
            answer, writer = template_query(pr), "template"
        queries.append(to_query(pr, answer, writer, root))
        writers[writer] += 1
    report = {"mined": len(prs), "filtered": dict(dropped), "kept_after_filters": len(kept),
              "queries": len(queries), "skipped_by_teacher": skipped, "writers": dict(writers)}
    atomic_write_text(out, "".join(q.model_dump_json() + "\n" for q in queries))
    atomic_write_json(report_path, report)
    if tracker is not None:
        tracker.log_metrics({"mined": len(prs), "kept_after_filters": len(kept), "queries": len(queries),
                             "teacher_failures": len(skipped)})
        tracker.log_artifact(report_path)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.pr_queries", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prs", default="data/prs/prs.jsonl")
    parser.add_argument("--out", default="data/queries/pr.jsonl")
    parser.add_argument("--report", default="data/queries/pr_report.json")
    args = parser.parse_args()
    root = repo_root()
    params = load_params()
    resolve = lambda p: Path(p) if Path(p).is_absolute() else root / p  # noqa: E731
    from pipelines.core.tracking import stage_run

    with stage_run("pr_queries", params.group("pr_queries")) as run:
        report = pr_queries(params, root, resolve(args.prs), resolve(args.out), resolve(args.report), tracker=run)
    log.info("%d PRs mined, %d past the filters (%s), %d queries written (%s)", report["mined"],
             report["kept_after_filters"], report["filtered"] or "none filtered", report["queries"], report["writers"])
    return 0


if __name__ == "__main__":
    main_guard(main)
