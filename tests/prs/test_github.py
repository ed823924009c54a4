"""The GitHub REST client against a loopback server replaying GitHub: paging, rate limits, retries, errors."""

from __future__ import annotations

import time
from collections import Counter
from datetime import date

import pytest

from pipelines.core.errors import UserError
from pipelines.prs.github import GitHubClient
from tests.prs.pr_fixtures import github, pr_json, serve_repo  # noqa: F401 (github is a fixture)


def test_since_stops_paging_and_limit_caps(github, tmp_path):
    serve_repo(github)
    client = GitHubClient(base_url=github.url, cache_dir=tmp_path / "cache")
    skipped: Counter = Counter()
    assert [pr["number"] for pr in client.merged_pulls("o/r", since=date(2024, 2, 1), skipped=skipped)] == [3]
    assert [path for path, _ in github.requests] == ["/repos/o/r/pulls?state=closed&sort=updated&direction=desc"
                                                     "&per_page=100", "/repos/o/r/pulls?per_page=100&page=2"]
    assert [pr["number"] for pr in client.merged_pulls("o/r", limit=1)] == [3]
    assert [pr["number"] for pr in client.merged_pulls("o/r", until=date(2024, 2, 1))] == [1]
    client.close()


def test_secondary_rate_limit_waits_retry_after(github, tmp_path):
    github.add("/repos/o/r/pulls",
               (403, {"message": "You have exceeded a secondary rate limit."}, {"Retry-After": "7"}),
               (200, [pr_json(5)], {}))
    waits: list[float] = []
    with GitHubClient(base_url=github.url, cache_dir=tmp_path, sleep=waits.append) as client:
        assert [pr["number"] for pr in client.merged_pulls("o/r")] == [5]
    assert waits == [7.0] and len(github.requests) == 2


def test_primary_rate_limit_waits_for_reset_capped(github, tmp_path):
    reset = str(int(time.time()) + 3600)
    github.add("/repos/o/r/pulls", (403, {"message": "API rate limit exceeded"},
                                    {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}),
               (200, [pr_json(5)], {}))
    waits: list[float] = []
    with GitHubClient(base_url=github.url, cache_dir=tmp_path, sleep=waits.append, max_wait_s=120) as client:
        assert [pr["number"] for pr in client.merged_pulls("o/r")] == [5]
    assert waits == [120]


def test_server_error_is_retried_with_backoff(github, tmp_path):
    github.add("/repos/o/r/pulls", (502, {"message": "Bad Gateway"}, {}), (200, [pr_json(5)], {}))
    waits: list[float] = []
    with GitHubClient(base_url=github.url, cache_dir=tmp_path, sleep=waits.append, backoff_s=1.0) as client:
        assert [pr["number"] for pr in client.merged_pulls("o/r")] == [5]
    assert len(waits) == 1 and 0.5 <= waits[0] <= 1.0
    github.add("/repos/o/r/pulls", (503, {}, {}))
    with GitHubClient(base_url=github.url, cache_dir=tmp_path, sleep=waits.append, max_retries=2) as client:
        with pytest.raises(UserError, match="answered 503.*gave up after 2 retries"):
            list(client.merged_pulls("o/r"))


def test_missing_repo_is_a_clear_error(github, tmp_path):
    with GitHubClient(base_url=github.url, cache_dir=tmp_path) as client:
        with pytest.raises(UserError, match=r"/repos/o/nope/pulls not found \(404\)"):
            list(client.merged_pulls("o/nope"))
