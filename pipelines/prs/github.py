"""Merged pull requests over the GitHub REST API.

:class:`GitHubClient` GETs with ``Link`` pagination, an on-disk ETag cache (conditional requests),
primary and secondary rate-limit waits and jittered retries on 5xx; the token comes from
``$GITHUB_TOKEN`` and is never cached. :func:`mine_github` yields a repository's merged PRs as records.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import time
from collections import Counter
from datetime import date, datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlencode, urlsplit

import httpx
from pydantic import ValidationError

from pipelines.core.errors import UserError
from pipelines.core.io import atomic_write_text
from pipelines.prs.github_defaults import DEFAULT_API, REPO_NAME, TOKEN_ENV
from pipelines.prs.github_objects import pr_from_api
from pipelines.prs.records import PullRequest, count_skip, in_window, parse_time

log = logging.getLogger(__name__)


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
            updated = parse_time(pr.get("updated_at"))
            if since is not None and updated is not None and updated.date() < since:
                break  # sorted by update time and merged_at <= updated_at: nothing later can be in the window
            merged = parse_time(pr.get("merged_at"))
            if merged is None:
                count_skip(skipped, "closed without merging")
                continue
            if not in_window(merged, since, until):
                count_skip(skipped, "merged outside the date window")
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
            count_skip(skipped, "malformed API record")
