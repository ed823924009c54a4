"""Pull requests as normalised records: :class:`PullRequest`, its files, and reading and writing them.

Every source (:mod:`pipelines.prs.github`, :mod:`pipelines.prs.git`, :mod:`pipelines.prs.dump`)
yields :class:`PullRequest`; :func:`read_prs` validates a ``prs.jsonl`` on read. A file's ``patch``
follows GitHub's convention: the hunks only (from the first ``@@``), ``None`` for binary files and
for text diffs GitHub leaves out as too large. :func:`unified_diff` puts the headers back and gives a
``git apply``-able diff. Bytes that are not UTF-8 (in patches, paths, messages) are decoded with
``errors="replace"`` so every record is plain, JSON-safe text.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from pipelines.core.io import atomic_write_text
from pipelines.core.schema import Record, read_jsonl

SHA = r"^[0-9a-f]{40}([0-9a-f]{24})?$"  # sha-1, or sha-256 repositories
BOT_NAME = re.compile(r"\[bot\]|^(dependabot|renovate|github-actions|pre-commit-ci|greenkeeper|snyk-bot)\b", re.I)


class FileChange(Record):
    """One file of a pull request. ``patch``: hunks only; ``None`` for binary or omitted diffs."""

    path: str = Field(min_length=1)
    status: Literal["added", "modified", "deleted", "renamed"]
    previous_path: str | None = None
    additions: int = Field(0, ge=0)
    deletions: int = Field(0, ge=0)
    patch: str | None = None
    binary: bool = False


class PullRequest(Record):
    """A merged change: a GitHub PR, a merge or squash commit naming one, or (fallback) a single commit.

    ``number`` is ``None`` only for ``change_unit: commit``. ``base_sha`` is where the change applies;
    ``head_sha`` is the PR's head (the merge's second parent; the commit itself for squash and commit
    units). Times are UTC.
    """

    repo: str = Field(min_length=1)
    number: int | None = Field(None, ge=1)
    title: str
    body: str = ""
    author: str | None = None
    created_at: datetime | None = None
    merged_at: datetime | None = None
    url: str | None = None
    base_sha: str = Field(pattern=SHA)
    head_sha: str = Field(pattern=SHA)
    files: list[FileChange]
    additions: int = Field(ge=0)
    deletions: int = Field(ge=0)
    changed_files: int = Field(ge=0)
    source: Literal["github", "git", "dump"]
    change_unit: Literal["merge", "squash", "commit", "pr"]
    labels: list[str] = Field(default_factory=list)
    is_bot: bool = False
    is_revert: bool = False

    @field_validator("created_at", "merged_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    @property
    def key(self) -> str:
        """A stable identity: ``repo#number``, or ``repo@sha`` for commit units."""
        return f"{self.repo}#{self.number}" if self.number is not None else f"{self.repo}@{self.head_sha[:12]}"


def read_prs(path: str | Path) -> list[PullRequest]:
    """All records of a ``prs.jsonl``, validated; a bad line raises UserError naming file:line."""
    return [pr for _, pr in read_jsonl(path, PullRequest)]


def write_prs(path: str | Path, prs: list[PullRequest]) -> None:
    """Write records as JSON lines, atomically (complete or absent)."""
    atomic_write_text(path, "".join(pr.model_dump_json() + "\n" for pr in prs))


def unified_diff(files: list[FileChange]) -> str:
    """A ``git apply``-able diff of the files' text changes; binary files and missing patches are left out.

    New and deleted files get mode 100644 (the records do not keep modes).
    """
    out: list[str] = []
    for f in files:
        if f.binary or f.patch is None:
            continue
        old = f.previous_path or f.path
        head = [f"diff --git a/{old} b/{f.path}\n"]
        if f.status == "added":
            head.append("new file mode 100644\n")
        elif f.status == "deleted":
            head.append("deleted file mode 100644\n")
        elif f.status == "renamed":
            head += [f"rename from {old}\n", f"rename to {f.path}\n"]
        if f.patch:
            head.append("--- /dev/null\n" if f.status == "added" else f"--- a/{old}\n")
            head.append("+++ /dev/null\n" if f.status == "deleted" else f"+++ b/{f.path}\n")
            body = f.patch if f.patch.endswith("\n") else f.patch + "\n"
        elif f.status == "modified":
            continue  # nothing to apply (a mode change)
        else:
            body = ""
        out += [*head, body]
    return "".join(out)


# ---------------------------------------------------------------- helpers for the sources
def count_skip(skipped: Counter | None, reason: str) -> None:
    """Count one change left out for ``reason`` (when the caller keeps count)."""
    if skipped is not None:
        skipped[reason] += 1


def parse_time(value: Any) -> datetime | None:
    """An ISO time (``Z`` or an offset; naive means UTC) or datetime as an aware UTC datetime; None for empty."""
    if not value:
        return None
    if isinstance(value, datetime):
        when = value
    else:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def in_window(when: datetime | None, since: date | None, until: date | None) -> bool:
    """``since <= when's UTC date <= until`` (both inclusive, either open); no time is outside any window."""
    if since is None and until is None:
        return True
    if when is None:
        return False
    day = when.astimezone(timezone.utc).date()
    return (since is None or day >= since) and (until is None or day <= until)


def is_bot(*names: str | None) -> bool:
    """True when a login, name or e-mail looks like an automation account (``[bot]``, dependabot, ...)."""
    return any(name and BOT_NAME.search(name) for name in names)


def is_revert(title: str, body: str) -> bool:
    """True for a change that reverts another (git's and GitHub's wording)."""
    return title.startswith("Revert ") or title.startswith('Revert"') or "This reverts commit" in body


def file_totals(files: list[FileChange]) -> dict[str, int]:
    """The record's ``additions``, ``deletions`` and ``changed_files`` summed over ``files``."""
    return {"additions": sum(f.additions for f in files), "deletions": sum(f.deletions for f in files),
            "changed_files": len(files)}
