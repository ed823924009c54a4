"""LIMI's filters on mined pull requests: what is not worth a query, each drop with its reason.

The rules run in this order and a dropped PR is counted once, under the first rule that drops it:

1. ``earlier_share``: per repository, only the earliest share of its mined PRs by creation date
   (merge date when a record has none) stays; LIMI kept the earlier half, so the later PRs stay
   unseen. The share is of everything mined for the repository, before any other rule, so it splits
   a history the same way whatever the other filters say.
2. Each PR on its own (:func:`filter_reason`): binary or empty change, docs-only, touching Markdown,
   revert, bot author, more than one file, before the temporal cutoff, patch over the token budget.
3. ``per_repo_sample``: a seeded random draw of that many PRs per repository from those left
   (LIMI drew one PR per repository per round).
4. ``per_repo_cap``: the first that many per repository, in the records' order.

Patch tokens are counted with the configured tokenizer (:func:`patch_token_counter`); about four
characters a token only when ``pr_queries.tokenizer`` is null.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from pipelines.core.errors import UserError
from pipelines.prs.config import PRQueriesParams
from pipelines.prs.records import PullRequest, unified_diff

DOC_SUFFIXES = (".md", ".rst", ".txt", ".adoc")
DOC_DIRS = ("docs/", "doc/")
MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdx")
CHARS_PER_TOKEN = 4  # the rough rate for code and diffs when no tokenizer is configured

TokenCounter = Callable[[str], int]


def approx_tokens(text: str) -> int:
    """About four characters a token: the count used when ``pr_queries.tokenizer`` is null."""
    return len(text) // CHARS_PER_TOKEN


def patch_token_counter(params: PRQueriesParams, root: Path) -> tuple[TokenCounter, str]:
    """The function that counts a patch's tokens, and how it counts (for the report).

    With ``tokenizer`` set, the tokenizer in that directory (relative paths under ``root``); a missing
    one is an error naming the key, never a silent switch to the character estimate.
    """
    if params.tokenizer is None:
        return approx_tokens, f"characters / {CHARS_PER_TOKEN}"
    path = Path(params.tokenizer).expanduser()
    path = path if path.is_absolute() else root / path
    if not (path / "tokenizer.json").exists() and not (path / "tokenizer_config.json").exists():
        raise UserError(f"params.yaml: pr_queries.tokenizer: {path} holds no tokenizer; run `dvc repro base_model` "
                        "(for models/base), point the key at a tokenizer directory, or set it to null to count "
                        f"about {CHARS_PER_TOKEN} characters a token")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)

    def count(text: str) -> int:
        # verbose=False: a patch longer than the model's context is counted, not warned about
        return len(tokenizer.encode(text, add_special_tokens=False, verbose=False))

    return count, f"tokenizer {params.tokenizer}"


def _is_doc(path: str) -> bool:
    return path.endswith(DOC_SUFFIXES) or path.startswith(DOC_DIRS)


def filter_reason(pr: PullRequest, params: PRQueriesParams, per_repo: Counter | None = None,
                  count_tokens: TokenCounter = approx_tokens) -> str | None:
    """Why a PR is filtered out on its own, or None to keep it.

    With ``per_repo`` (PRs kept so far per repository) the ``per_repo_cap`` is checked last.
    """
    text_files = [f for f in pr.files if not f.binary]
    if not text_files:
        return "binary or empty change"
    if params.drop_docs_only and all(_is_doc(f.path) for f in pr.files):
        return "docs or markdown only"
    if params.drop_markdown and any(f.path.lower().endswith(MARKDOWN_SUFFIXES)
                                    or (f.previous_path or "").lower().endswith(MARKDOWN_SUFFIXES) for f in pr.files):
        return "touches a markdown file"
    if pr.is_revert:
        return "revert"
    if pr.is_bot:
        return "bot author"
    if params.single_file and len(pr.files) != 1:
        return "more than one file"
    if params.cutoff and (pr.merged_at or pr.created_at) and (pr.merged_at or pr.created_at).date() < params.cutoff:
        return "before the temporal cutoff"
    if count_tokens(unified_diff(pr.files)) > params.max_patch_tokens:
        return "patch over the token budget"
    if per_repo is not None and params.per_repo_cap and per_repo[pr.repo] >= params.per_repo_cap:
        return "per-repo cap reached"
    return None


def later_share(prs: list[PullRequest], share: float) -> set[int]:
    """Indexes of the PRs outside the earliest ``share`` of their repository's PRs by creation date.

    A repository keeps ``ceil(share * n)`` of its ``n`` PRs (so one with a single PR keeps it); the
    merge date stands in for a missing creation date, and a PR with neither counts as the latest. Ties
    keep the records' order.
    """
    if share >= 1.0:
        return set()
    latest = datetime.max.replace(tzinfo=timezone.utc)
    by_repo: dict[str, list[int]] = defaultdict(list)
    for i, pr in enumerate(prs):
        by_repo[pr.repo].append(i)
    later: set[int] = set()
    for indexes in by_repo.values():
        ordered = sorted(indexes, key=lambda i: (prs[i].created_at or prs[i].merged_at or latest, i))
        later.update(ordered[math.ceil(share * len(ordered)):])
    return later


def sample_per_repo(prs: list[PullRequest], size: int, seed: int) -> set[int]:
    """Indexes of the PRs not drawn when ``size`` PRs are drawn per repository (seeded; 0 = keep all).

    Each PR gets a random rank from a generator seeded by ``seed`` and its key, and each repository
    keeps its ``size`` lowest: the draw is the same whatever the records' order, and a repository's
    draw does not change when other repositories come or go.
    """
    if size <= 0:
        return set()
    by_repo: dict[str, list[int]] = defaultdict(list)
    for i, pr in enumerate(prs):
        by_repo[pr.repo].append(i)
    left: set[int] = set()
    for indexes in by_repo.values():
        ranked = sorted(indexes, key=lambda i: (random.Random(f"{seed}:{prs[i].key}").random(), prs[i].key))
        left.update(ranked[size:])
    return left


def apply_filters(prs: list[PullRequest], params: PRQueriesParams, count_tokens: TokenCounter = approx_tokens
                  ) -> tuple[list[PullRequest], Counter]:
    """The PRs that pass every rule, in their order, and the count of the others by reason.

    ``count_tokens`` counts a patch's tokens (the stage passes :func:`patch_token_counter`'s).
    """
    dropped: Counter = Counter()
    later = later_share(prs, params.earlier_share)
    passed: list[PullRequest] = []
    for i, pr in enumerate(prs):
        reason = "in the later share of its repository" if i in later else \
            filter_reason(pr, params, count_tokens=count_tokens)
        if reason:
            dropped[reason] += 1
        else:
            passed.append(pr)
    not_drawn = sample_per_repo(passed, params.per_repo_sample, params.sample_seed)
    dropped["not drawn in the per-repository sample"] += len(not_drawn)
    per_repo: Counter = Counter()
    kept: list[PullRequest] = []
    for i, pr in enumerate(passed):
        if i in not_drawn:
            continue
        if params.per_repo_cap and per_repo[pr.repo] >= params.per_repo_cap:
            dropped["per-repo cap reached"] += 1
            continue
        kept.append(pr)
        per_repo[pr.repo] += 1
    return kept, +dropped  # unary plus: reasons that dropped nothing are left out
