"""Change units of a local clone: every pull request its default branch holds, read with git itself, offline.

A PR reaches a history in one of these shapes, and each is mined with its own base and head:

* a merge commit ``Merge pull request #N from ...`` (base = first parent, head = second parent);
* a merge commit titled ``Title (#N)`` (GitHub's "merge commit message: pull request title"; same base and head);
* a squash commit ``Title (#N)`` with one parent (base = parent, head = the commit);
* any of these on a branch merged into the default branch, recursively: by a merge without a PR number
  (``Merge branch '1.2.x'``, ``Merge remote-tracking branch ...``) or by a PR of its own (``Merge stable
  into main (#123)``, a stacked PR); the PR's base and head come from its own merge on that branch, not
  from the merge that brought the branch in. A PR's own commits are part of its record, not units of
  their own (unless one names a PR itself, as a PR merged into that PR's branch does).

The repository is a clone's directory or a git bundle file (``git bundle create x.bundle --all``), which is
cloned into a temporary folder first: how a small example history ships inside this project.

Rebase-merged PRs (a series of single-parent commits whose subjects name no PR) cannot be told from direct
pushes in git alone: linking them needs the GitHub API or a dump (:mod:`pipelines.prs.github`,
:mod:`pipelines.prs.dump`). A history with no PR at all yields its first-parent single commits instead.
Each record's patch applies at its base commit.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Iterator, Literal

from pipelines.core.errors import UserError
from pipelines.prs.records import (FileChange, PullRequest, count_skip, file_totals, in_window, is_bot, is_revert,
                                   parse_time)

log = logging.getLogger(__name__)


class GitError(UserError):
    """A git command failed."""


class RevisionError(GitError):
    """The pinned commit is not in the clone, or the clone is too shallow to mine its history completely."""


MERGE_SUBJECT = re.compile(r"^Merge pull request #(\d+) from (\S+)")
SQUASH_SUBJECT = re.compile(r"^(.*?)\s*\(#(\d+)\)$")
GITHUB_REMOTE = re.compile(r"github\.com[:/]+([^/\s]+)/([^/\s]+?)(?:\.git)?/?$")
# Neutralise user config that would change what we parse (signatures in log, prefixes, relative paths)
# or what we record (hunk shapes, file order), so a commit gives the same records on every machine.
_GIT_SETTINGS = (
    "core.quotepath=off", "log.showSignature=false", "diff.noprefix=false", "diff.mnemonicPrefix=false",
    "diff.relative=false", "diff.algorithm=myers", "diff.indentHeuristic=true", "diff.context=3",
    "diff.interHunkContext=0", "diff.suppressBlankEmpty=false", "diff.submodule=short", "diff.renameLimit=1000",
    "diff.ignoreSubmodules=none", "core.attributesFile=/dev/null", "i18n.logOutputEncoding=UTF-8")
_GIT_CONFIG = [arg for setting in _GIT_SETTINGS for arg in ("-c", setting)]
_DIFF = ["diff", "--no-color", "--no-ext-diff", "--no-textconv", "-M", "-O/dev/null"]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def git(repo: Path, *args: str) -> bytes:
    """Run git in ``repo`` with config that keeps its output parseable; GitError with git's first line."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "GIT_OPTIONAL_LOCKS": "0"}
    proc = subprocess.run(["git", "-C", str(repo), *_GIT_CONFIG, *args], capture_output=True, env=env)
    if proc.returncode:
        first = _text(proc.stderr).strip().splitlines()
        raise GitError(f"{repo}: git {args[0]} failed ({first[0] if first else f'exit {proc.returncode}'})")
    return proc.stdout


@dataclass
class _Commit:
    sha: str
    parents: list[str]
    author: str
    email: str
    authored: datetime
    committed: datetime
    message: str


def _split_message(message: str) -> tuple[str, str]:
    """(subject, body): the first paragraph joined into a line, and the rest."""
    first, _, rest = message.strip().partition("\n\n")
    return " ".join(line.strip() for line in first.splitlines()).strip(), rest.strip()


_LOG_FORMAT = "--format=%H%x1f%P%x1f%an%x1f%ae%x1f%aI%x1f%cI%x1f%B"


def _log(repo: Path, *revs: str, first_parent: bool = False) -> list[_Commit]:
    args = ["log", "-z", _LOG_FORMAT, *(["--first-parent"] if first_parent else []), *revs, "--"]
    commits = []
    for record in git(repo, *args).split(b"\0"):
        if not record.strip():
            continue
        sha, parents, name, email, authored, committed, message = _text(record).split("\x1f", 6)
        commits.append(_Commit(sha.strip(), parents.split(), name, email, parse_time(authored),
                               parse_time(committed), message))
    return commits


# How a unit reached the history: the keys of ``mine_git(patterns=...)`` (with " on a merged branch" appended
# for PRs found on a branch merged into the default branch rather than on its first-parent line).
PR_MERGE, TITLED_MERGE = "merge pull request", "merge titled (#N)"
SQUASH, SINGLE_COMMIT = "squash (#N)", "single commit"
ON_BRANCH = " on a merged branch"


@dataclass
class _Unit:
    commit: _Commit
    kind: Literal["merge", "squash", "commit"]
    number: int | None
    title: str
    body: str
    branch: str = ""
    pattern: str = SINGLE_COMMIT
    on_branch: bool = False  # found on a merged branch, not on the default branch's first-parent line


def _classify(commit: _Commit) -> _Unit | None:
    """A merge or squash commit that names a PR, else None.

    A merge whose subject ends in ``(#N)`` is a PR merge titled with the PR's title, not a squash: its
    base and head are its two parents like those of ``Merge pull request #N``.
    """
    subject, rest = _split_message(commit.message)
    match = MERGE_SUBJECT.match(subject)
    if match and len(commit.parents) >= 2:
        title, body = _split_message(rest)
        return _Unit(commit, "merge", int(match.group(1)), title, body, branch=match.group(2), pattern=PR_MERGE)
    match = SQUASH_SUBJECT.match(subject)
    if match and len(commit.parents) >= 2:
        return _Unit(commit, "merge", int(match.group(2)), match.group(1) or subject, rest, pattern=TITLED_MERGE)
    if match and len(commit.parents) == 1:
        return _Unit(commit, "squash", int(match.group(2)), match.group(1) or subject, rest, pattern=SQUASH)
    return None


@dataclass
class _Step:
    """A commit of the walk: on the default branch's first-parent line or on a branch merged into it."""

    commit: _Commit
    unit: _Unit | None
    on_branch: bool
    in_pr: bool  # brought in by a PR merge: a commit of that PR unless it is a PR unit itself


def _walk(commits: dict[str, _Commit], start: str) -> list[_Step]:
    """The first-parent line of ``start`` and, recursively, of what each merge on such a line brought in.

    Newest first, in the order the changes reached ``start``: its first-parent line, and right after a
    merge the first-parent line of what that merge brought in (the commits reachable from its second
    parent but not from its first), and so on for the merges on that line. So PRs merged into a branch
    that reached the default branch by a branch merge (``Merge branch '1.2.x'``) or by a PR of its own
    (``Merge stable into main (#123)``) are found on that branch, with their own base and head. Every
    commit is visited once, so a PR merged into a maintenance branch and forward-merged several times is
    met once, where it was merged. The order is a function of the graph alone (no dates).
    """
    seen: set[str] = set()  # commits handled so far: always closed under "parent of"
    done: list[_Step] = []  # oldest first
    todo: list[tuple] = [("branch", start, False, False)]
    while todo:
        task = todo.pop()
        if task[0] == "branch":  # a first-parent line, oldest commit on top of the stack
            _, tip, on_branch, in_pr = task
            line = []
            sha: str | None = tip
            while sha is not None and sha in commits and sha not in seen:
                line.append(commits[sha])
                sha = commits[sha].parents[0] if commits[sha].parents else None
            todo += [("enter", commit, on_branch, in_pr) for commit in line]
        elif task[0] == "enter":  # first what the commit merged in, then the commit
            _, commit, on_branch, in_pr = task
            unit = _classify(commit)
            if unit is not None:
                unit.on_branch = on_branch
            todo.append(("done", _Step(commit, unit, on_branch, in_pr)))
            for parent in reversed(commit.parents[1:]):
                todo.append(("branch", parent, True, in_pr or unit is not None))
        else:
            step = task[1]
            seen.add(step.commit.sha)
            done.append(step)
    return done[::-1]


def _first_merges(steps: list[_Step]) -> set[str]:
    """Per PR number, the commit of its earliest merge (committer date; on a tie the later one in ``steps``).

    GitHub merges a PR once, into its base branch; other commits carrying the number are copies made
    later (a fix merged into ``1.2.x`` and cherry-picked onto the default branch, a backport, a
    follow-up citing the PR), so the earliest is the PR as it was merged, with its true base and head.
    """
    first: dict[int, _Commit] = {}
    for step in reversed(steps):  # oldest first, so on equal dates the first met stays
        unit = step.unit
        if unit is not None and unit.number is not None:
            known = first.get(unit.number)
            if known is None or step.commit.committed < known.committed:
                first[unit.number] = step.commit
    return {commit.sha for commit in first.values()}


def diff_files(repo: Path, base: str, head: str) -> list[FileChange]:
    """Per-file status, line counts and hunks of ``git diff -M base head``."""
    entries = _raw_numstat(git(repo, *_DIFF, "--raw", "--numstat", "-z", base, head, "--"))
    chunks = [c for c in re.split(rb"(?m)^(?=diff --git )", git(repo, *_DIFF, base, head, "--")) if c]
    if len(chunks) != len(entries):  # should not happen; keep the counts rather than misattribute patches
        log.warning("%s: %s..%s: %d patches for %d files; patches left out", repo, base[:12], head[:12],
                    len(chunks), len(entries))
        chunks = [None] * len(entries)
    files = []
    for (status, path, previous, additions, deletions), chunk in zip(entries, chunks):
        binary = additions is None
        patch = None if binary or chunk is None else _hunks(chunk)
        files.append(FileChange(path=path, status=status, previous_path=previous, additions=additions or 0,
                                deletions=deletions or 0, patch=patch, binary=binary))
    return files


_GIT_STATUS = {"A": "added", "D": "deleted", "M": "modified", "T": "modified", "R": "renamed", "C": "added"}


def _raw_numstat(out: bytes) -> list[tuple[str, str, str | None, int | None, int | None]]:
    """Parse ``--raw --numstat -z``: raw records (``:modes shas status``, paths) then numstat records."""
    tokens = out.split(b"\0")
    raw: list[tuple[str, str, str | None]] = []
    counts: list[tuple[int | None, int | None]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token:
            i += 1
            continue
        if token.startswith(b":"):
            letter = _text(token.split()[-1])[:1]
            if letter in ("R", "C"):
                raw.append((_GIT_STATUS[letter], _text(tokens[i + 2]), _text(tokens[i + 1])))
                i += 3
            else:
                raw.append((_GIT_STATUS.get(letter, "modified"), _text(tokens[i + 1]), None))
                i += 2
            continue
        added, deleted, path = token.split(b"\t", 2)
        counts.append((None, None) if added == b"-" else (int(added), int(deleted)))
        i += 1 if path else 3  # a rename's numstat names its two paths in the next tokens
    if len(raw) != len(counts):
        raise GitError(f"cannot parse git diff --raw --numstat ({len(raw)} files, {len(counts)} counts)")
    return [(status, path, previous if status == "renamed" else None, *count)
            for (status, path, previous), count in zip(raw, counts)]


def _hunks(chunk: bytes) -> str:
    """The hunks of one file's patch ("" when it has none: a pure rename or a mode change)."""
    start = chunk.find(b"\n@@")
    if start < 0:
        return ""
    hunks = chunk[start + 1:]
    return _text(hunks[:-1] if hunks.endswith(b"\n") else hunks)


def _github_slug(repo: Path) -> str | None:
    try:
        remote = _text(git(repo, "config", "--get", "remote.origin.url")).strip()
    except GitError:
        return None
    match = GITHUB_REMOTE.search(remote)
    return f"{match.group(1)}/{match.group(2)}" if match else None


def mine_git(repo_path: str | Path, since: date | None = None, until: date | None = None, limit: int | None = None,
             *, rev: str | None = None, repo_name: str | None = None, skipped: Counter | None = None,
             patterns: Counter | None = None) -> Iterator[PullRequest]:
    """Every PR the default branch's history holds, newest first in the order they reached it.

    PR merges (``Merge pull request #N from ...`` or a merge titled ``Title (#N)``: base = first parent,
    head = second parent) and squash commits (``Title (#N)``: base = parent), on the first-parent line
    and on the branches merged into it (see :func:`_walk`; such a PR is placed right after the merge
    that brought it in, so the order is a function of the commit graph alone). The patch is what the
    unit brought into its base branch (first parent -> commit), so it applies at ``base_sha``. A PR
    number met more than once is recorded once, at its earliest merge (see :func:`_first_merges`); the
    others count as skipped. A history with no PR yields the single non-merge commits of its
    first-parent line instead (``change_unit: commit``, ``number: None``).
    ``rev``: None mines HEAD, with GitHub URLs from ``remote.origin.url``; a commit pins the records
    to that commit's history alone (RevisionError when the clone lacks it or is shallow; no URLs,
    since remotes differ between clones). ``since``/``until`` filter on the merge (commit) date;
    ``limit`` caps the units yielded; ``repo_name`` labels the records (default: ``repo_path`` as given).
    ``skipped`` counts the commits left out by reason; ``patterns`` counts the yielded records by the
    shape they were found in (``merge pull request``, ``merge titled (#N)``, ``squash (#N)``, ``single
    commit``; `` on a merged branch`` appended for PRs found on a branch merged into the first-parent line).
    ``repo_path`` may be a git bundle file: it is cloned into a temporary folder, mined there and removed.
    """
    path = Path(repo_path).expanduser()
    if path.is_file():
        with tempfile.TemporaryDirectory(prefix="limi-bundle-") as tmp:
            clone = Path(tmp) / "repo.git"
            proc = subprocess.run(["git", "clone", "-q", "--bare", str(path.resolve()), str(clone)], capture_output=True,
                                  env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
            if proc.returncode:
                first = _text(proc.stderr).strip().splitlines()
                raise UserError(f"{path}: neither a directory nor a git bundle "
                                f"({first[-1] if first else f'git clone exit {proc.returncode}'})")
            yield from mine_git(clone, since, until, limit, rev=rev, repo_name=repo_name or str(repo_path),
                                skipped=skipped, patterns=patterns)
        return
    if not path.is_dir():
        raise UserError(f"{path}: no such directory")
    git(path, "rev-parse", "--git-dir")
    start = _start(path, rev)
    steps = _walk({c.sha: c for c in _log(path, start)}, start)
    pr_mode = any(step.unit for step in steps)
    if not pr_mode:
        log.warning("%s: no 'Merge pull request #N' or '(#N)' commits; mining single commits instead", path)
        steps = [step for step in steps if not step.on_branch]
    first = _first_merges(steps)
    label = repo_name or str(repo_path)
    slug = _github_slug(path) if rev is None else None
    kept = 0
    for step in steps:
        commit = step.commit
        if step.unit is None and step.in_pr:
            continue  # one of a PR's own commits, part of that PR's record
        unit = step.unit or _single_commit(commit, pr_mode, skipped)
        if unit is None:
            continue
        if unit.number is not None and commit.sha not in first:
            count_skip(skipped, "pull request number seen in an earlier merge")
            continue
        if not in_window(commit.committed, since, until):
            count_skip(skipped, "merged outside the date window")
            continue
        try:
            pr = _unit_record(path, unit, label, slug)
        except GitError as exc:
            log.warning("%s: %s skipped (%s)", path, commit.sha[:12], exc)
            count_skip(skipped, "git diff failed (shallow clone?)")
            continue
        if patterns is not None:
            patterns[unit.pattern + (ON_BRANCH if unit.on_branch else "")] += 1
        yield pr
        kept += 1
        if limit and kept >= limit:
            return


def _start(path: Path, rev: str | None) -> str:
    """The sha to walk back from: HEAD's, or the pinned ``rev``'s (whose whole history must be in the clone)."""
    if rev is None:
        try:
            return _text(git(path, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")).strip()
        except GitError:
            raise GitError(f"{path}: HEAD names no commit (an empty repository?)") from None
    try:
        sha = _text(git(path, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")).strip()
    except GitError:
        raise RevisionError(f"commit {rev} is not in the clone at {path} (a shallow clone, or not fetched); "
                            f"run `git -C {path} fetch --unshallow`, or pin a commit the clone has") from None
    if _text(git(path, "rev-parse", "--is-shallow-repository")).strip() == "true":
        raise RevisionError(f"{path} is a shallow clone, so the history of {rev} may be cut short and the records "
                            f"would depend on the clone's depth; run `git -C {path} fetch --unshallow`")
    return sha


def _single_commit(commit: _Commit, pr_mode: bool, skipped: Counter | None) -> _Unit | None:
    """A commit as its own change unit, when the history names no PRs and it is neither a root nor a merge."""
    if pr_mode:
        count_skip(skipped, "not a pull request merge or squash commit")
        return None
    if len(commit.parents) != 1:
        count_skip(skipped, "root commit" if not commit.parents else "merge commit")
        return None
    subject, body = _split_message(commit.message)
    return _Unit(commit, "commit", None, subject, body)


def _unit_record(repo: Path, unit: _Unit, label: str, slug: str | None) -> PullRequest:
    commit = unit.commit
    base = commit.parents[0]
    head, author, email, created, title = commit.sha, commit.author, commit.email, commit.authored, unit.title
    if unit.kind == "merge":
        head = commit.parents[1]
        branch = _log(repo, f"{base}..{head}")  # newest first
        if branch:
            first = branch[-1]
            author, email, created = first.author, first.email, first.authored
            if not title:
                title = _split_message(branch[0].message)[0] if len(branch) == 1 else unit.branch.split("/", 1)[-1]
        title = title or unit.branch
    files = diff_files(repo, base, commit.sha)
    url = None
    if slug:
        url = (f"https://github.com/{slug}/pull/{unit.number}" if unit.number is not None
               else f"https://github.com/{slug}/commit/{commit.sha}")
    return PullRequest(
        repo=label, number=unit.number, title=title, body=unit.body, author=author, created_at=created,
        merged_at=commit.committed, url=url, base_sha=base, head_sha=head, files=files, **file_totals(files),
        source="git", change_unit=unit.kind, labels=[], is_bot=is_bot(author, email),
        is_revert=is_revert(title, unit.body))
