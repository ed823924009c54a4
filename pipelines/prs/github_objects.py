"""GitHub's pull-request JSON objects as records, for the REST client and for dumps of API objects."""

from __future__ import annotations

import re
from typing import Any, Literal

from pipelines.prs.records import FileChange, PullRequest, file_totals, is_bot, is_revert

_STATUS = {"added": "added", "removed": "deleted", "modified": "modified", "renamed": "renamed",
           "copied": "added", "changed": "modified", "unchanged": "modified"}


def file_from_api(data: dict[str, Any]) -> FileChange:
    """A GitHub ``pulls/{n}/files`` entry as a FileChange."""
    status = _STATUS.get(str(data.get("status")), "modified")
    patch = data.get("patch")
    additions, deletions = int(data.get("additions") or 0), int(data.get("deletions") or 0)
    # GitHub omits the patch for binary files (no line counts) and for very large text diffs (with counts);
    # a dump may also carry binary content as the patch itself (NUL bytes, a `GIT binary patch`)
    binary = patch is None and additions == 0 and deletions == 0 and status != "renamed"
    if isinstance(patch, str) and ("\0" in patch or patch.startswith("GIT binary patch")):
        binary, patch = True, None
    return FileChange(path=data["filename"], status=status, previous_path=data.get("previous_filename"),
                      additions=additions, deletions=deletions, patch=patch, binary=binary)


def repo_of(pr: dict[str, Any]) -> str | None:
    """``owner/name`` of a GitHub PR object (base repo, else its URLs)."""
    full = ((pr.get("base") or {}).get("repo") or {}).get("full_name")
    if full:
        return full
    for key in ("url", "html_url"):
        match = re.search(r"/repos/([^/]+/[^/]+)/pulls/|github\.com/([^/]+/[^/]+)/pull/", str(pr.get(key) or ""))
        if match:
            return match.group(1) or match.group(2)
    return None


def pr_from_api(pr: dict[str, Any], files: list[dict[str, Any]] | None, *, source: Literal["github", "dump"],
                repo: str | None = None) -> PullRequest:
    """A GitHub pull-request object (and its files) as a PullRequest; raises ValidationError/KeyError."""
    user = pr.get("user") or {}
    login = user.get("login")
    title, body = str(pr.get("title") or ""), str(pr.get("body") or "")
    changes = [file_from_api(f) for f in files or []]
    if files:
        counts = file_totals(changes)
    else:  # a dump without files may still carry the PR's own counts
        counts = {k: int(pr.get(k) or 0) for k in ("additions", "deletions", "changed_files")}
    return PullRequest(
        repo=repo or repo_of(pr) or "", number=pr["number"], title=title, body=body, author=login,
        created_at=pr.get("created_at"), merged_at=pr.get("merged_at"), url=pr.get("html_url"),
        base_sha=(pr.get("base") or {}).get("sha"), head_sha=(pr.get("head") or {}).get("sha"),
        files=changes, **counts, source=source, change_unit="pr",
        labels=[str(label["name"]) for label in pr.get("labels") or [] if isinstance(label, dict) and "name" in label],
        is_bot=user.get("type") == "Bot" or is_bot(login), is_revert=is_revert(title, body))
