"""Shared fixtures of the PR tests: a GitHub on loopback and temp git repositories built with git."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

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


def all_text(directory: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in directory.rglob("*") if p.is_file())


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


GIT = ["git", "-c", "user.email=a@b.c", "-c", "user.name=dev", "-c", "commit.gpgsign=false"]


def repo_with_prs(root: Path) -> Path:
    repo = root / "proj"
    repo.mkdir(parents=True)
    run = lambda *a: subprocess.run([*GIT, *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    run("init", "-q", "-b", "main")
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n")
    (repo / "README.md").write_text("# calc\n")
    run("add", "-A")
    run("commit", "-qm", "initial")
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b  # the sum, not the difference\n\n\n"
                                  "def mul(a, b):\n    return a * b\n")
    run("commit", "-qam", "Fix add returning the difference (#1)")
    (repo / "README.md").write_text("# calc\n\nAdds and multiplies.\n")
    run("commit", "-qam", "Describe the module (#2)")
    return repo


def submit_call(**args):
    """An assistant message that calls ``submit_query`` with ``args``."""
    call = {"type": "function", "function": {"name": "submit_query", "arguments": args}}
    return {"content": "", "tool_calls": [call]}


# ---------------------------------------------------------------- hand-built records and a tokenizer
def make_pr(repo: str = "o/r", number: int = 1, files: tuple[str, ...] = ("src/a.py",), created: str | None = None,
            title: str = "Fix the thing", patch: str = "@@ -1 +1 @@\n-a\n+b\n", binary: tuple[str, ...] = ()):
    """A PullRequest built by hand: each of ``files`` changed by ``patch``, each of ``binary`` a binary change."""
    from pipelines.prs.records import FileChange, PullRequest

    changes = [FileChange(path=f, status="modified", additions=1, deletions=1, patch=patch) for f in files]
    changes += [FileChange(path=f, status="modified", binary=True) for f in binary]
    return PullRequest(repo=repo, number=number, title=title, body="", created_at=created,
                       merged_at=created, base_sha="a" * 40, head_sha=f"{number:040x}", files=changes,
                       additions=len(files), deletions=len(files), changed_files=len(changes), source="dump",
                       change_unit="pr")


def word_tokenizer(directory: Path) -> Path:
    """A tokenizer directory whose tokens are words and single punctuation marks (every one unknown).

    Its count differs a lot from four characters a token, so a test can tell which one was used.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]"}))
    return directory
