"""mine_prs: a loopback server replaying GitHub, temp git repositories built with git, a local S3 server."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from pipelines.core.errors import UserError
from pipelines.mine_prs import MinePRsParams, PRSource, mine
from pipelines.prs.dump import read_pr_dump
from pipelines.prs.git import mine_git
from pipelines.prs.github import GitHubClient
from pipelines.prs.records import read_prs, unified_diff

REPO = Path(__file__).resolve().parents[1]
TOKEN = "ghp_TESTtoken_0123456789abcdef"


# ---------------------------------------------------------------- a GitHub on loopback
class FakeGitHub:
    """Replays queued replies per (path, page); every JSON reply carries an ETag and honours If-None-Match."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[tuple[int, object, dict]]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.not_modified = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                fake.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                parts = urlsplit(self.path)
                page = parse_qs(parts.query).get("page", ["1"])[0]
                queue = fake.routes.get((parts.path, page))
                status, body, headers = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else \
                    (404, {"message": "Not Found"}, {})
                data = json.dumps(body).encode()
                etag = f'"{hashlib.sha1(data).hexdigest()}"'
                if status == 200 and self.headers.get("If-None-Match") == etag:
                    fake.not_modified += 1
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 200:
                    self.send_header("ETag", etag)
                for name, value in headers.items():
                    self.send_header(name, value.replace("{base}", fake.url))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def add(self, path: str, *replies: tuple[int, object, dict], page: int = 1) -> None:
        self.routes[(path, str(page))] = list(replies)


@pytest.fixture
def github():
    fake = FakeGitHub()
    yield fake
    fake.server.shutdown()


def pr_json(n: int, merged: bool = True, updated: str = "2024-03-01T00:00:00Z", login: str = "alice") -> dict:
    return {"number": n, "title": f"Change {n}", "body": f"Body of {n}", "user": {"login": login, "type": "User"},
            "created_at": "2024-02-01T10:00:00Z", "updated_at": updated,
            "merged_at": updated if merged else None, "html_url": f"https://github.com/o/r/pull/{n}",
            "base": {"sha": "a" * 40, "repo": {"full_name": "o/r"}}, "head": {"sha": f"{n:040x}"},
            "labels": [{"name": "bug"}]}


def file_json(name: str, status: str = "modified", patch: str | None = "@@ -1 +1 @@\n-a\n+b", additions: int = 1,
              deletions: int = 1, previous: str | None = None) -> dict:
    data = {"filename": name, "status": status, "additions": additions, "deletions": deletions,
            "changes": additions + deletions}
    if patch is not None:
        data["patch"] = patch
    if previous:
        data["previous_filename"] = previous
    return data


def next_page(path: str, page: int) -> dict:
    return {"Link": f'<{{base}}{path}?per_page=100&page={page}>; rel="next", <{{base}}{path}?page=9>; rel="last"'}


def serve_repo(fake: FakeGitHub) -> None:
    """o/r: two pages of closed PRs (3 merged, 2 not, 1 merged); PR 3's files span two pages."""
    fake.add("/repos/o/r/pulls", (200, [pr_json(3), pr_json(2, merged=False)], next_page("/repos/o/r/pulls", 2)))
    fake.add("/repos/o/r/pulls", (200, [pr_json(1, updated="2024-01-15T00:00:00Z")], {}), page=2)
    fake.add("/repos/o/r/pulls/3/files",
             (200, [file_json("src/a.py"), file_json("src/new.py", "added", additions=3, deletions=0)],
              next_page("/repos/o/r/pulls/3/files", 2)))
    fake.add("/repos/o/r/pulls/3/files", (200, [file_json("logo.png", "added", patch=None, additions=0, deletions=0)],
                                          {}), page=2)
    fake.add("/repos/o/r/pulls/1/files", (200, [file_json("b.py", "renamed", patch=None, additions=0, deletions=0,
                                                          previous="a.py"),
                                                file_json("gone.txt", "removed", additions=0, deletions=2)], {}))


def github_params(fake: FakeGitHub, cache: Path, **source) -> MinePRsParams:
    return MinePRsParams(sources=[PRSource(kind="github", repo="o/r", limit=0, **source)], github_api=fake.url,
                         cache_dir=str(cache))


def all_text(directory: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in directory.rglob("*") if p.is_file())


def test_github_pagination_then_etag_cache(github, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    serve_repo(github)
    cache, out = tmp_path / "cache", tmp_path / "prs.jsonl"
    report = mine(github_params(github, cache), out, tmp_path, report_path=tmp_path / "report.json")

    prs = read_prs(out)
    assert [pr.number for pr in prs] == [3, 1]
    three, one = prs
    assert [f.path for f in three.files] == ["src/a.py", "src/new.py", "logo.png"]  # both pages of files
    assert (three.additions, three.deletions, three.changed_files) == (4, 1, 3)
    assert three.files[2].binary and three.files[2].patch is None and not three.files[0].binary
    assert (three.source, three.change_unit, three.labels, three.author) == ("github", "pr", ["bug"], "alice")
    assert three.merged_at.isoformat() == "2024-03-01T00:00:00+00:00"
    assert one.files[0].status == "renamed" and one.files[0].previous_path == "a.py" and not one.files[0].binary
    assert one.files[1].status == "deleted"
    assert report["skipped"] == {"closed without merging": 1} and report["repos"] == {"o/r": 2}
    assert json.loads((tmp_path / "report.json").read_text())["total"] == 2
    first_run = list(github.requests)
    assert len(first_run) == 5
    assert all(h.get("authorization") == f"Bearer {TOKEN}" for _, h in first_run)
    assert not any("if-none-match" in h for _, h in first_run)

    # Second run: every request is conditional, GitHub answers 304 and the cached bodies are used.
    github.requests.clear()
    mine(github_params(github, cache), tmp_path / "again.jsonl", tmp_path)
    assert len(github.requests) == 5 and github.not_modified == 5
    assert all(h.get("if-none-match", "").startswith('"') for _, h in github.requests)
    assert (tmp_path / "again.jsonl").read_text() == out.read_text()
    assert list(cache.rglob("*.json")) and TOKEN not in all_text(cache)


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


def test_rejected_token_is_one_clear_line_and_nothing_is_written(github, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    github.add("/repos/o/r/pulls", (401, {"message": "Bad credentials"}, {}))
    cache, out = tmp_path / "cache", tmp_path / "data" / "prs.jsonl"
    with pytest.raises(UserError) as err:
        mine(github_params(github, cache), out, tmp_path, report_path=tmp_path / "data" / "report.json")
    assert str(err.value) == "GitHub rejected the token from $GITHUB_TOKEN (401)"
    assert not out.exists() and not (tmp_path / "data" / "report.json").exists()
    assert not cache.exists() or TOKEN not in all_text(cache)

    # The same through the command line: one line on stderr, exit status 2, no token anywhere.
    result = subprocess.run([sys.executable, "-m", "pipelines.mine_prs", "--repo", "o/r", "--out", str(out),
                             "--github-api", github.url], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(cache)})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: GitHub rejected the token from $GITHUB_TOKEN (401)"
    assert TOKEN not in result.stderr + result.stdout and not out.exists()
    assert not cache.exists() or TOKEN not in all_text(cache)


def test_missing_repo_is_a_clear_error(github, tmp_path):
    with GitHubClient(base_url=github.url, cache_dir=tmp_path) as client:
        with pytest.raises(UserError, match=r"/repos/o/nope/pulls not found \(404\)"):
            list(client.merged_pulls("o/nope"))


# ---------------------------------------------------------------- local git
GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_EMAIL": "a@example.com",
           "GIT_COMMITTER_NAME": "Merger", "GIT_COMMITTER_EMAIL": "m@example.com"}


def sh(repo: Path, *args: str, author: str = "Alice", when: str = "2024-01-01T12:00:00+00:00") -> str:
    env = {**os.environ, **GIT_ENV, "GIT_AUTHOR_NAME": author, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def pr_repo(tmp_path_factory) -> Path:
    """main: init; PR #7 merged --no-ff (add, modify, binary, rename); 'Add thing (#8)' (latin-1); a plain commit."""
    repo = tmp_path_factory.mktemp("prrepo")
    sh(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# Demo\n\nIntro.\n")
    (repo / "old_name.txt").write_text("".join(f"line {i}\n" for i in range(20)))
    sh(repo, "add", ".")
    sh(repo, "commit", "-qm", "Initial commit")
    sh(repo, "checkout", "-qb", "feature")
    (repo / "feature.py").write_text("def feature():\n    return 1\n")
    (repo / "README.md").write_text("# Demo\n\nIntro.\n\nNow with a feature.\n")
    (repo / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    sh(repo, "mv", "old_name.txt", "new_name.txt")
    sh(repo, "add", ".")
    sh(repo, "commit", "-qm", "Add the feature", author="Bob", when="2024-02-01T09:00:00+00:00")
    sh(repo, "checkout", "-q", "main")
    sh(repo, "merge", "--no-ff", "-q", "-m", "Merge pull request #7 from x/feature", "-m", "Add the feature module",
       "-m", "It does one thing.", "feature", when="2024-02-10T15:00:00+00:00")
    (repo / "latin.txt").write_bytes("café naïve\n".encode("latin-1"))
    (repo / "feature.py").write_text("def feature():\n    return 2\n")
    sh(repo, "add", ".")
    sh(repo, "commit", "-qm", "Add thing (#8)", "-m", "* squashed commit", author="Carol",
       when="2024-03-05T08:00:00+00:00")
    (repo / "README.md").write_text("# Demo\n\nIntro, edited.\n\nNow with a feature.\n")
    sh(repo, "commit", "-qam", "Tweak docs", when="2024-03-10T08:00:00+00:00")
    return repo


def test_git_merges_and_squashes(pr_repo):
    skipped: Counter = Counter()
    prs = list(mine_git(pr_repo, skipped=skipped))
    assert [(pr.number, pr.change_unit) for pr in prs] == [(8, "squash"), (7, "merge")]
    assert skipped == {"not a pull request merge or squash commit": 2}  # 'Tweak docs' and the initial commit

    squash, merge = prs
    merge_sha = sh(pr_repo, "rev-parse", "HEAD~2")
    assert merge.base_sha == sh(pr_repo, "rev-parse", f"{merge_sha}^1")
    assert merge.head_sha == sh(pr_repo, "rev-parse", "feature")
    assert (merge.title, merge.body, merge.author) == ("Add the feature module", "It does one thing.", "Bob")
    assert merge.created_at.isoformat() == "2024-02-01T09:00:00+00:00"
    assert merge.merged_at.isoformat() == "2024-02-10T15:00:00+00:00"
    files = {f.path: f for f in merge.files}
    assert {p: f.status for p, f in files.items()} == {"README.md": "modified", "feature.py": "added",
                                                       "image.png": "added", "new_name.txt": "renamed"}
    assert files["image.png"].binary and files["image.png"].patch is None
    assert files["new_name.txt"].previous_path == "old_name.txt" and files["new_name.txt"].patch == ""
    assert files["feature.py"].patch == "@@ -0,0 +1,2 @@\n+def feature():\n+    return 1"
    assert (merge.additions, merge.deletions, merge.changed_files) == (4, 0, 4)

    assert squash.base_sha == sh(pr_repo, "rev-parse", "HEAD~2")
    assert squash.head_sha == sh(pr_repo, "rev-parse", "HEAD~1")
    assert (squash.title, squash.body, squash.author) == ("Add thing", "* squashed commit", "Carol")
    latin = next(f for f in squash.files if f.path == "latin.txt")
    assert latin.patch == "@@ -0,0 +1 @@\n+caf\ufffd na\ufffdve" and not latin.binary
    line = squash.model_dump_json()
    assert json.loads(line)["files"][0]["path"] and line.encode("utf-8")  # valid JSON, encodable UTF-8


def test_git_window_and_limit(pr_repo):
    assert [pr.number for pr in mine_git(pr_repo, since=date(2024, 3, 1))] == [8]
    assert [pr.number for pr in mine_git(pr_repo, until=date(2024, 2, 28))] == [7]
    assert [pr.number for pr in mine_git(pr_repo, limit=1)] == [8]


def test_unified_diff_applies_at_base(pr_repo, tmp_path):
    merge = next(pr for pr in mine_git(pr_repo) if pr.number == 7)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(pr_repo), str(clone)], check=True)
    sh(clone, "checkout", "-q", merge.base_sha)
    (tmp_path / "pr.diff").write_text(unified_diff(merge.files))
    sh(clone, "apply", str(tmp_path / "pr.diff"))
    for name in ("README.md", "feature.py", "new_name.txt"):
        assert (clone / name).read_bytes() == sh(pr_repo, "show", f"{merge.head_sha}:{name}").encode() + b"\n"
    assert not (clone / "old_name.txt").exists()


def test_history_without_prs_falls_back_to_commits(tmp_path):
    repo = tmp_path / "plain"
    repo.mkdir()
    sh(repo, "init", "-q", "-b", "main")
    for i in range(3):
        (repo / "notes.txt").write_text("".join(f"note {j}\n" for j in range(i + 1)))
        sh(repo, "add", ".")
        sh(repo, "commit", "-qm", f"Note {i}", when=f"2024-01-0{i + 1}T00:00:00+00:00")
    skipped: Counter = Counter()
    prs = list(mine_git(repo, skipped=skipped, repo_name="plain"))
    assert [(pr.change_unit, pr.number, pr.title) for pr in prs] == [("commit", None, "Note 2"),
                                                                      ("commit", None, "Note 1")]
    assert prs[0].base_sha == sh(repo, "rev-parse", "HEAD~1") and prs[0].head_sha == sh(repo, "rev-parse", "HEAD")
    assert prs[0].key == f"plain@{prs[0].head_sha[:12]}" and skipped == {"root commit": 1}
    assert prs[0].files[0].patch.endswith("+note 2")


def test_not_a_repository_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a git repository"):
        list(mine_git(tmp_path))


def test_cli_mines_a_local_repo(pr_repo, tmp_path):
    out = tmp_path / "out" / "prs.jsonl"
    result = subprocess.run([sys.executable, "-m", "pipelines.mine_prs", "--repo", str(pr_repo), "--out", str(out),
                             "--since", "2024-01-01", "--report", str(tmp_path / "report.json")],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    prs = read_prs(out)
    assert [(pr.number, pr.source, pr.repo) for pr in prs] == [(8, "git", str(pr_repo)), (7, "git", str(pr_repo))]
    assert json.loads((tmp_path / "report.json").read_text())["sources"][0]["change_units"] == {"squash": 1, "merge": 1}


# ---------------------------------------------------------------- dumps
def dump_lines() -> list[dict]:
    return [{"pull_request": pr_json(11), "files": [file_json("x.py")]},
            {**pr_json(12, merged=False), "files": []},
            {**pr_json(13, login="dependabot[bot]"), "files": [file_json("y.py", additions=2, deletions=0)]}]


def check_dump(prs, skipped) -> None:
    assert [(pr.number, pr.repo, pr.source, pr.change_unit) for pr in prs] == [(11, "o/r", "dump", "pr"),
                                                                               (13, "o/r", "dump", "pr")]
    assert prs[1].is_bot and not prs[0].is_bot and prs[1].additions == 2
    assert skipped == {"closed without merging": 1}


def test_dump_from_a_local_file(tmp_path):
    path = tmp_path / "dump.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in dump_lines()))
    skipped: Counter = Counter()
    check_dump(list(read_pr_dump(str(path), skipped=skipped)), skipped)
    packed = tmp_path / "dump.jsonl.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert [pr.number for pr in read_pr_dump(str(packed))] == [11, 13]
    path.write_text(path.read_text() + '{"number": 14, "merged_at": "2024-01-01T00:00:00Z"}\n')
    with pytest.raises(UserError, match=rf"{path}:4: PullRequest field"):
        list(read_pr_dump(str(path)))


def test_dump_from_s3(tmp_path, monkeypatch):
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}"}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        s3 = boto3.client("s3", endpoint_url=f"http://{host}:{port}")
        s3.create_bucket(Bucket="dumps")
        s3.put_object(Bucket="dumps", Key="prs/o-r.jsonl", Body="".join(json.dumps(x) + "\n" for x in dump_lines()))
        skipped: Counter = Counter()
        check_dump(list(read_pr_dump("s3://dumps/prs/o-r.jsonl", skipped=skipped)), skipped)
        with pytest.raises(UserError, match="NoSuchKey"):
            list(read_pr_dump("s3://dumps/missing.jsonl"))
    finally:
        server.stop()


# ---------------------------------------------------------------- records and params
def test_read_prs_names_file_and_line(tmp_path):
    path = tmp_path / "prs.jsonl"
    path.write_text('{"repo": "o/r"}\n')
    with pytest.raises(UserError, match=rf"{path}:1: PullRequest field"):
        read_prs(path)


def test_params_check_each_source():
    assert MinePRsParams().sources[0].kind == "git" and MinePRsParams().sources[0].repo == "."
    with pytest.raises(ValidationError, match="needs uri"):
        PRSource(kind="dump")
    with pytest.raises(ValidationError, match="owner/name"):
        PRSource(kind="github", repo="not a repo")
    with pytest.raises(ValidationError, match="after until"):
        PRSource(kind="git", since=date(2024, 2, 1), until=date(2024, 1, 1))
    with pytest.raises(ValidationError, match="Extra inputs"):
        MinePRsParams.model_validate({"sources": [{"kind": "git", "branch": "main"}]})


def test_token_never_reaches_records_logs_or_mlflow(github, tmp_path):
    """mine_prs and pr_queries run as stages (MLflow on) with GITHUB_TOKEN set: the marker is nowhere."""
    import yaml

    from tests.conftest import make_project, run_module

    serve_repo(github)
    root = make_project(tmp_path / "proj")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["mine_prs"] = {"sources": [{"kind": "github", "repo": "o/r", "limit": 0}], "github_api": github.url,
                          "cache_dir": "cache/github"}
    script = root / "teacher.jsonl"
    script.write_text("")  # a teacher with nothing to say: every PR falls back to the template
    params["llm"]["models"]["t"] = {"backend": "scripted", "script": str(script)}
    params["llm"]["roles"]["teacher"] = "t"
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    env = {"GITHUB_TOKEN": TOKEN, "OPENAI_API_KEY": TOKEN + "-openai"}
    logs = ""
    for module in ("pipelines.mine_prs", "pipelines.pr_queries"):
        result = run_module(module, root=root, env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        logs += result.stdout + result.stderr
    assert (root / "data/queries/pr.jsonl").read_text().count("\n") >= 1
    assert TOKEN not in logs
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert TOKEN.encode() not in path.read_bytes(), path
