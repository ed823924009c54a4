"""Pull requests as normalised records, from three places.

- :class:`GitHubClient` and :func:`mine_github`: merged PRs of ``owner/name`` over the GitHub REST
  API, with ``Link`` pagination, an on-disk ETag cache (conditional requests), primary and
  secondary rate-limit waits and jittered retries on 5xx.
- :func:`mine_git`: a local clone's first-parent history: ``Merge pull request #N from ...`` merges,
  ``Subject (#N)`` squash commits or, when the history has neither, single commits.
- :func:`read_pr_dump`: JSON lines of GitHub pull-request objects with their files, from a local
  path or ``s3://bucket/key``.

Every source yields :class:`PullRequest`; :func:`read_prs` validates a ``prs.jsonl`` on read.
A file's ``patch`` follows GitHub's convention: the hunks only (from the first ``@@``), ``None``
for binary files and for text diffs GitHub leaves out as too large. :func:`unified_diff` puts the
headers back and gives a ``git apply``-able diff. Bytes that are not UTF-8 (in patches, paths,
messages) are decoded with ``errors="replace"`` so every record is plain, JSON-safe text.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import random
import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Callable, Iterator, Literal
from urllib.parse import urlencode, urlsplit

import httpx
from pydantic import Field, ValidationError, field_validator

from pipelines.core.errors import UserError
from pipelines.core.io import atomic_write_text
from pipelines.core.schema import Record, read_jsonl

log = logging.getLogger(__name__)

TOKEN_ENV = "GITHUB_TOKEN"
DEFAULT_API = "https://api.github.com"
REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
SHA = r"^[0-9a-f]{40}([0-9a-f]{24})?$"  # sha-1, or sha-256 repositories
BOT_NAME = re.compile(r"\[bot\]|^(dependabot|renovate|github-actions|pre-commit-ci|greenkeeper|snyk-bot)\b", re.I)


# ---------------------------------------------------------------- records
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


# ---------------------------------------------------------------- shared helpers
def _skip(skipped: Counter | None, reason: str) -> None:
    if skipped is not None:
        skipped[reason] += 1


def _parse_time(value: Any) -> datetime | None:
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
    return title.startswith("Revert ") or title.startswith('Revert"') or "This reverts commit" in body


def _totals(files: list[FileChange]) -> dict[str, int]:
    return {"additions": sum(f.additions for f in files), "deletions": sum(f.deletions for f in files),
            "changed_files": len(files)}


# ---------------------------------------------------------------- GitHub REST
class GitHubAuthError(UserError):
    """GitHub answered 401: the token is missing rights, expired or wrong."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/limi-pipelines/github`` (``~/.cache/...`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "limi-pipelines" / "github"


class ETagCache:
    """Responses by URL: ``{url, etag, link, body}`` per file. No request headers, so no token, ever."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def _path(self, url: str) -> Path:
        digest = hashlib.sha256(url.encode()).hexdigest()
        return self.directory / digest[:2] / f"{digest}.json"

    def get(self, url: str) -> dict[str, Any] | None:
        try:
            entry = json.loads(self._path(url).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return entry if isinstance(entry, dict) and entry.get("url") == url and "etag" in entry else None

    def put(self, url: str, etag: str, body: Any, link: str | None) -> None:
        atomic_write_text(self._path(url), json.dumps({"url": url, "etag": etag, "link": link, "body": body}))


def next_link(link_header: str | None) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header, if any."""
    for part in (link_header or "").split(","):
        match = re.match(r'\s*<([^>]+)>\s*;(.*)', part)
        if match and re.search(r'rel="?next"?', match.group(2)):
            return match.group(1)
    return None


class GitHubClient:
    """A small GitHub REST client: GETs with pagination, ETag cache, rate-limit waits and retries.

    ``token``: sent as a bearer token only to ``base_url`` (see :meth:`from_env`). ``sleep`` is
    called with every wait in seconds (tests inject a recorder). ``max_wait_s`` caps a primary
    rate-limit wait; the request is retried afterwards. Each request gives up after ``max_retries``
    retries.
    """

    def __init__(self, token: str | None = None, base_url: str = DEFAULT_API, cache_dir: str | Path | None = None,
                 timeout: float = 30, max_retries: int = 5, *, sleep: Callable[[float], None] = time.sleep,
                 max_wait_s: float = 900.0, backoff_s: float = 1.0):
        self.base_url = base_url.rstrip("/")
        self._token = token or None
        self.cache = ETagCache(cache_dir if cache_dir is not None else default_cache_dir())
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.stats: Counter = Counter()
        self._http = httpx.Client(timeout=timeout, follow_redirects=True)  # httpx drops auth on cross-origin redirects

    @classmethod
    def from_env(cls, **kwargs: Any) -> "GitHubClient":
        """A client with the token from ``$GITHUB_TOKEN`` (anonymous when unset)."""
        return cls(token=os.environ.get(TOKEN_ENV) or None, **kwargs)

    @property
    def authenticated(self) -> bool:
        return self._token is not None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "GitHubClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        """The absolute URL for an API path (the cache key: stable, no credentials)."""
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"
        return f"{url}?{urlencode(params)}" if params else url

    def get(self, url: str) -> tuple[Any, str | None]:
        """GET one URL; return the JSON body and the next page's URL (or None)."""
        cached = self.cache.get(url)
        attempt = 0
        while True:
            headers = self._headers(url)
            if cached is not None:
                headers["If-None-Match"] = cached["etag"]
            try:
                resp = self._http.get(url, headers=headers)
            except httpx.TransportError as exc:
                self._retry_or_fail(attempt, self._backoff(attempt),
                                    f"cannot reach {_short(url)} ({type(exc).__name__})")
                attempt += 1
                continue
            self.stats["requests"] += 1
            status = resp.status_code
            if status == 304 and cached is not None:
                self.stats["not_modified"] += 1
                return cached["body"], next_link(cached.get("link"))
            if 200 <= status < 300:
                try:
                    body = resp.json()
                except ValueError:
                    raise UserError(f"GitHub sent a body that is not JSON for {_short(url)} ({status})") from None
                link = resp.headers.get("link")
                etag = resp.headers.get("etag")
                if etag:
                    self.cache.put(url, etag, body, link)
                return body, next_link(link)
            if status == 401:
                if self._token:
                    raise GitHubAuthError(f"GitHub rejected the token from ${TOKEN_ENV} (401)")
                raise GitHubAuthError(f"GitHub requires authentication for {_short(url)} (401); set ${TOKEN_ENV}")
            wait = self._rate_limit_wait(resp)
            if wait is not None:
                self.stats["rate_limit_waits"] += 1
                self._retry_or_fail(attempt, wait, f"GitHub rate limit still exceeded for {_short(url)}")
            elif status >= 500:
                self.stats["retries"] += 1
                self._retry_or_fail(attempt, self._backoff(attempt), f"GitHub answered {status} for {_short(url)}")
            else:
                raise UserError(self._refusal(resp, url))
            attempt += 1

    def paginate(self, path: str, params: dict[str, Any] | None = None) -> Iterator[Any]:
        """Items of a list endpoint, following ``Link: rel="next"`` across pages."""
        url: str | None = self.url(path, params)
        while url:
            body, url = self.get(url)
            if not isinstance(body, list):
                raise UserError(f"GitHub sent {type(body).__name__} where a list was expected ({_short(path)})")
            yield from body

    def merged_pulls(self, repo: str, since: date | None = None, until: date | None = None,
                     limit: int | None = None, skipped: Counter | None = None) -> Iterator[dict[str, Any]]:
        """Merged PRs of ``owner/name``, most recently updated first, ``since <= merged_at <= until``."""
        params = {"state": "closed", "sort": "updated", "direction": "desc", "per_page": 100}
        kept = 0
        for pr in self.paginate(f"/repos/{repo}/pulls", params):
            updated = _parse_time(pr.get("updated_at"))
            if since is not None and updated is not None and updated.date() < since:
                break  # sorted by update time and merged_at <= updated_at: nothing later can be in the window
            merged = _parse_time(pr.get("merged_at"))
            if merged is None:
                _skip(skipped, "closed without merging")
                continue
            if not in_window(merged, since, until):
                _skip(skipped, "merged outside the date window")
                continue
            yield pr
            kept += 1
            if limit and kept >= limit:
                return

    def pull_files(self, repo: str, number: int) -> list[dict[str, Any]]:
        """The files of one PR (all pages; GitHub lists at most 3000)."""
        return list(self.paginate(f"/repos/{repo}/pulls/{number}/files", {"per_page": 100}))

    def _headers(self, url: str) -> dict[str, str]:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
                   "User-Agent": "limi-pipelines-mine-prs"}
        if self._token and (url == self.base_url or url.startswith(self.base_url + "/")):
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _backoff(self, attempt: int) -> float:
        return min(60.0, self.backoff_s * 2 ** attempt) * random.uniform(0.5, 1.0)

    def _retry_or_fail(self, attempt: int, wait: float, problem: str) -> None:
        if attempt >= self.max_retries:
            raise UserError(f"{problem}; gave up after {attempt} retries, try again later")
        log.warning("%s; retrying in %.1fs", problem, wait)
        self.sleep(wait)

    def _rate_limit_wait(self, resp: httpx.Response) -> float | None:
        """Seconds to wait for a rate limit, or None when the response is not one."""
        if resp.status_code not in (403, 429):
            return None
        retry_after = resp.headers.get("retry-after")
        if retry_after:  # secondary rate limit: GitHub says how long
            return min(max(_seconds(retry_after), 0.0), self.max_wait_s)
        if resp.headers.get("x-ratelimit-remaining") == "0":  # primary: wait for the window to reset
            reset = resp.headers.get("x-ratelimit-reset")
            wait = float(reset) - time.time() + 1 if reset and reset.isdigit() else 60.0
            return min(max(wait, 1.0), self.max_wait_s)
        if resp.status_code == 429 or "secondary rate limit" in _message(resp).lower():
            return min(60.0, self.max_wait_s)  # GitHub's advice when it gives no figure
        return None

    def _refusal(self, resp: httpx.Response, url: str) -> str:
        message = _message(resp)
        if resp.status_code == 404:
            hint = "" if self._token else f" (a private repository needs ${TOKEN_ENV})"
            return f"GitHub: {_short(url)} not found (404); check the owner/name{hint}"
        return f"GitHub refused {_short(url)} ({resp.status_code}{': ' + message if message else ''})"


def _seconds(retry_after: str) -> float:
    try:
        return float(retry_after)
    except ValueError:
        try:
            return (parsedate_to_datetime(retry_after) - datetime.now(timezone.utc)).total_seconds()
        except (TypeError, ValueError):
            return 60.0


def _message(resp: httpx.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return ""
    return str(data.get("message", ""))[:200] if isinstance(data, dict) else ""


def _short(url: str) -> str:
    parts = urlsplit(url)
    return parts.path if parts.scheme else url


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
        totals = _totals(changes)
    else:  # a dump without files may still carry the PR's own counts
        totals = {k: int(pr.get(k) or 0) for k in ("additions", "deletions", "changed_files")}
    return PullRequest(
        repo=repo or repo_of(pr) or "", number=pr["number"], title=title, body=body, author=login,
        created_at=pr.get("created_at"), merged_at=pr.get("merged_at"), url=pr.get("html_url"),
        base_sha=(pr.get("base") or {}).get("sha"), head_sha=(pr.get("head") or {}).get("sha"),
        files=changes, **totals, source=source, change_unit="pr",
        labels=[str(label["name"]) for label in pr.get("labels") or [] if isinstance(label, dict) and "name" in label],
        is_bot=user.get("type") == "Bot" or is_bot(login), is_revert=is_revert(title, body))


def mine_github(client: GitHubClient, repo: str, since: date | None = None, until: date | None = None,
                limit: int | None = None, skipped: Counter | None = None) -> Iterator[PullRequest]:
    """Merged PRs of ``owner/name`` with their files, newest update first, at most ``limit``."""
    if not REPO_NAME.match(repo):
        raise UserError(f"{repo!r}: a GitHub repository is named owner/name")
    for pr in client.merged_pulls(repo, since, until, limit, skipped):
        files = client.pull_files(repo, pr["number"])
        try:
            yield pr_from_api(pr, files, source="github", repo=repo)
        except (ValidationError, KeyError, TypeError, ValueError) as exc:
            log.warning("%s#%s: cannot normalise (%s); skipped", repo, pr.get("number"), str(exc).splitlines()[0])
            _skip(skipped, "malformed API record")


# ---------------------------------------------------------------- local git
class GitError(UserError):
    """A git command failed."""


MERGE_SUBJECT = re.compile(r"^Merge pull request #(\d+) from (\S+)")
SQUASH_SUBJECT = re.compile(r"^(.*?)\s*\(#(\d+)\)$")
GITHUB_REMOTE = re.compile(r"github\.com[:/]+([^/\s]+)/([^/\s]+?)(?:\.git)?/?$")
# Neutralise user config that would change what we parse (signatures in log, prefixes, relative paths).
_GIT_CONFIG = ["-c", "core.quotepath=off", "-c", "log.showSignature=false", "-c", "diff.noprefix=false",
               "-c", "diff.mnemonicPrefix=false", "-c", "diff.relative=false"]
_DIFF = ["diff", "--no-color", "--no-ext-diff", "--no-textconv", "-M"]


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
        commits.append(_Commit(sha.strip(), parents.split(), name, email, _parse_time(authored),
                               _parse_time(committed), message))
    return commits


@dataclass
class _Unit:
    commit: _Commit
    kind: Literal["merge", "squash", "commit"]
    number: int | None
    title: str
    body: str
    branch: str = ""


def _classify(commit: _Commit) -> _Unit | None:
    """A merge or squash commit that names a PR, else None."""
    subject, rest = _split_message(commit.message)
    match = MERGE_SUBJECT.match(subject)
    if match and len(commit.parents) >= 2:
        title, body = _split_message(rest)
        return _Unit(commit, "merge", int(match.group(1)), title, body, branch=match.group(2))
    match = SQUASH_SUBJECT.match(subject)
    if match and len(commit.parents) == 1:
        return _Unit(commit, "squash", int(match.group(2)), match.group(1) or subject, rest)
    return None


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
             *, rev: str = "HEAD", repo_name: str | None = None, skipped: Counter | None = None
             ) -> Iterator[PullRequest]:
    """Change units of a local clone's first-parent history of ``rev``, newest first.

    PR merges (``Merge pull request #N from ...``: base = first parent, head = second parent) and
    squash commits (``Subject (#N)``: base = parent). The patch is what the unit brought into the
    base branch (first parent -> commit), so it applies at ``base_sha``. A history with neither
    yields single non-merge commits instead (``change_unit: commit``, ``number: None``).
    ``since``/``until`` filter on the merge (commit) date; ``limit`` caps the units yielded;
    ``repo_name`` labels the records (default: ``repo_path`` as given).
    """
    path = Path(repo_path).expanduser()
    if not path.is_dir():
        raise UserError(f"{path}: no such directory")
    git(path, "rev-parse", "--git-dir")
    try:
        git(path, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except GitError:
        raise GitError(f"{path}: {rev} names no commit (an empty repository?)") from None
    commits = _log(path, rev, first_parent=True)
    units = [_classify(c) for c in commits]
    pr_mode = any(units)
    if not pr_mode:
        log.warning("%s: no 'Merge pull request #N' or '(#N)' commits; mining single commits instead", path)
    label = repo_name or str(repo_path)
    slug = _github_slug(path)
    seen: set[int] = set()
    kept = 0
    for commit, unit in zip(commits, units):
        if unit is None:
            if pr_mode:
                _skip(skipped, "not a pull request merge or squash commit")
                continue
            if len(commit.parents) != 1:
                _skip(skipped, "root commit" if not commit.parents else "merge commit")
                continue
            subject, body = _split_message(commit.message)
            unit = _Unit(commit, "commit", None, subject, body)
        if unit.number is not None and unit.number in seen:
            _skip(skipped, "pull request number seen in a newer commit")
            continue
        if not in_window(commit.committed, since, until):
            _skip(skipped, "merged outside the date window")
            continue
        try:
            pr = _unit_record(path, unit, label, slug)
        except GitError as exc:
            log.warning("%s: %s skipped (%s)", path, commit.sha[:12], exc)
            _skip(skipped, "git diff failed (shallow clone?)")
            continue
        if unit.number is not None:
            seen.add(unit.number)
        yield pr
        kept += 1
        if limit and kept >= limit:
            return


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
        merged_at=commit.committed, url=url, base_sha=base, head_sha=head, files=files, **_totals(files),
        source="git", change_unit=unit.kind, labels=[], is_bot=is_bot(author, email),
        is_revert=is_revert(title, unit.body))


# ---------------------------------------------------------------- dumps
def _s3_client() -> Any:
    import boto3

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    return boto3.client("s3", endpoint_url=endpoint)


def _dump_lines(uri: str) -> Iterator[tuple[int, bytes]]:
    gz = uri.endswith(".gz")
    if uri.startswith("s3://"):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, _, key = uri[5:].partition("/")
        if not bucket or not key:
            raise UserError(f"{uri}: an S3 URI is s3://bucket/key")
        try:
            body = _s3_client().get_object(Bucket=bucket, Key=key)["Body"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise UserError(f"{uri}: cannot read ({code})") from None
        except BotoCoreError as exc:
            raise UserError(f"{uri}: cannot read ({type(exc).__name__}: {str(exc)[:200]})") from None
        stream: Any = gzip.GzipFile(fileobj=body) if gz else body
        lines = stream if gz else body.iter_lines(keepends=True)
        with body:
            yield from enumerate(lines, 1)
        return
    path = Path(uri[7:] if uri.startswith("file://") else uri).expanduser()
    try:
        fh = gzip.open(path, "rb") if gz else path.open("rb")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    with fh:
        yield from enumerate(fh, 1)


def read_pr_dump(uri: str, since: date | None = None, until: date | None = None, limit: int | None = None,
                 skipped: Counter | None = None) -> Iterator[PullRequest]:
    """PRs from JSON lines of GitHub API objects, each ``{"pull_request": {...}, "files": [...]}`` or a
    pull-request object with a ``files`` key; from a path (``.gz`` too) or ``s3://bucket/key``.

    Unmerged PRs and PRs merged outside the window are skipped; a malformed line raises UserError
    naming ``uri:line``.
    """
    kept = 0
    for lineno, raw in _dump_lines(uri):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise UserError(f"{uri}:{lineno}: not valid JSON ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise UserError(f"{uri}:{lineno}: expected a JSON object")
        pr = data.get("pull_request") if isinstance(data.get("pull_request"), dict) else data
        files = data.get("files", pr.get("files"))
        merged = pr.get("merged_at")
        if not merged:
            _skip(skipped, "closed without merging")
            continue
        try:
            record = pr_from_api(pr, files, source="dump")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(record)"
            raise UserError(f"{uri}:{lineno}: PullRequest field {where}: {first['msg']}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{uri}:{lineno}: not a GitHub pull-request object ({type(exc).__name__}: {exc})") from None
        if not in_window(record.merged_at, since, until):
            _skip(skipped, "merged outside the date window")
            continue
        yield record
        kept += 1
        if limit and kept >= limit:
            return
