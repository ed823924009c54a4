"""LIMI's filters on mined pull requests: what is not worth a query, each drop with its reason."""

from __future__ import annotations

from collections import Counter

from pipelines.prs.config import PRQueriesParams
from pipelines.prs.records import PullRequest, unified_diff

DOC_SUFFIXES = (".md", ".rst", ".txt", ".adoc")
DOC_DIRS = ("docs/", "doc/")


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



def apply_filters(prs: list[PullRequest], params: PRQueriesParams) -> tuple[list[PullRequest], Counter]:
    """The PRs that pass every filter, in their order, and the count of the others by reason."""
    dropped: Counter = Counter()
    per_repo: Counter = Counter()
    kept: list[PullRequest] = []
    for pr in prs:
        reason = filter_reason(pr, params, per_repo)
        if reason:
            dropped[reason] += 1
        else:
            kept.append(pr)
            per_repo[pr.repo] += 1
    return kept, dropped
