"""PR workspaces: the repository at the base commit and nothing past it (the fix must not be reachable)."""

import os
import subprocess
from pathlib import Path

import pytest

from pipelines.agent.workspace import DIFF_COMMAND, prepare_workspace
from pipelines.core.errors import UserError
from pipelines.core.schema import Query, VerifierSpec

CANARY = "zqx-canary-7f3a91-the-fix"
GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Dev",
           "GIT_AUTHOR_EMAIL": "dev@example.com", "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com",
           "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z"}


def git(cwd: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", "-c", "commit.gpgsign=false", *args], cwd=cwd, env={**os.environ, **GIT_ENV},
                          check=check, capture_output=True)
    return (proc.stdout + proc.stderr).decode("utf-8", "replace")


@pytest.fixture
def source(tmp_path) -> tuple[Path, str]:
    """A repository whose main branch and tag go past the base commit to a fix carrying ``CANARY``;
    a side branch and a stash carry it too. Returns (repo, base commit)."""
    repo = tmp_path / "src"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (repo / "pkg").mkdir()
    (repo / "pkg" / "data.txt").write_text("base data\n")
    (repo / "run.sh").write_text("#!/bin/sh\necho run\n")
    (repo / "run.sh").chmod(0o755)
    (repo / ".gitignore").write_text("build/\n*.log\n")
    (repo / "kept.log").write_text("tracked although ignored\n")
    (repo / ".gitattributes").write_text("pkg/data.txt export-ignore\n")
    git(repo, "add", "-A")
    git(repo, "add", "-f", "kept.log")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "checkout", "-qb", "side")
    (repo / "side.txt").write_text(f"side {CANARY}\n")
    git(repo, "add", "side.txt")
    git(repo, "commit", "-qm", "side work")
    git(repo, "checkout", "-q", "main")
    (repo / "calc.py").write_text(f"def add(a, b):\n    return a + b  # {CANARY}\n")
    git(repo, "commit", "-qam", "Fix add (#1)")
    git(repo, "tag", "v1")
    (repo / "calc.py").write_text(f"def add(a, b):\n    return a + b  # {CANARY} stashed\n")
    git(repo, "stash", "-q")
    return repo, base


def pr_query(repo: str, commit: str | None) -> Query:
    return Query(id="pr-1", source="pr", domain="software", category="codebase_debugging", query="Make add add.",
                 workspace={"git": repo, "commit": commit}, verifier=VerifierSpec(kind="reference_patch", patch="x"))


def leaks(dest: Path, needle: str = CANARY) -> list[str]:
    """Where ``needle`` can be found in ``dest``: raw bytes of any file (.git included), every object
    decompressed, all refs' history, dangling objects."""
    found = [str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]
    for args in (["log", "--all", "-p", "--reflog"], ["fsck", "--lost-found", "--unreachable", "--no-progress"],
                 ["rev-list", "--all", "--objects", "--reflog"], ["cat-file", "--batch-all-objects", "--batch"],
                 ["stash", "list", "-p"]):
        if needle in git(dest, *args, check=False):
            found.append("git " + " ".join(args))
    lost = dest / ".git" / "lost-found"
    found += [str(p) for p in lost.rglob("*") if p.is_file() and needle in git(dest, "cat-file", "-p", p.name)]
    return found


def test_plain_clone_leaks_the_fix(source, tmp_path):
    """The negative control: a clone checked out at the base still reaches the fix, so ``leaks`` can see it."""
    repo, base = source
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "checkout", "-q", "--detach", base)
    git(clone, "remote", "remove", "origin")
    assert CANARY not in (clone / "calc.py").read_text()
    assert "git log --all -p --reflog" in leaks(clone)


def test_workspace_holds_the_base_tree_and_nothing_past_it(source, tmp_path):
    repo, base = source
    dest = prepare_workspace(pr_query("src", base), tmp_path / "ws", tmp_path)
    assert leaks(dest) == []
    assert git(dest, "rev-list", "--all").split() == [git(dest, "rev-parse", "HEAD").strip()]
    assert git(dest, "for-each-ref", "--format=%(refname)").split() == ["refs/heads/main"]
    assert git(dest, "remote").strip() == "" and git(dest, "stash", "list").strip() == ""
    assert not (dest / ".git" / "hooks").exists() and not (dest / ".git" / "shallow").exists()
    assert git(dest, "log", "-1", "--format=%s").strip() == f"base {base}"
    # the base tree exactly: same files, modes and bytes (export-ignore and .gitignore change nothing)
    assert git(dest, "ls-tree", "-r", "HEAD") == git(repo, "ls-tree", "-r", base)
    assert (dest / "calc.py").read_text() == "def add(a, b):\n    return a - b\n"
    assert (dest / "pkg" / "data.txt").read_text() == "base data\n" and (dest / "kept.log").exists()
    assert os.access(dest / "run.sh", os.X_OK)
    assert git(dest, "status", "--porcelain").strip() == ""
    # the final diff is taken against the base commit
    (dest / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    diff = subprocess.run(["bash", "-c", DIFF_COMMAND], cwd=dest, capture_output=True, text=True).stdout
    assert "+    return a + b" in diff and "-    return a - b" in diff
    # the source is untouched
    assert git(repo, "rev-parse", "main").strip() != base and git(repo, "stash", "list").strip()


def test_same_base_same_commit_and_url_sources(source, tmp_path):
    repo, base = source
    one = prepare_workspace(pr_query(str(repo), base), tmp_path / "one", tmp_path)
    two = prepare_workspace(pr_query(f"file://{repo}", base), tmp_path / "two", tmp_path)
    short = prepare_workspace(pr_query(str(repo), base[:9]), tmp_path / "short", tmp_path)
    heads = {git(d, "rev-parse", "HEAD").strip() for d in (one, two, short)}
    assert len(heads) == 1
    for dest in (two, short):
        assert leaks(dest) == [] and git(dest, "remote").strip() == ""


def test_no_commit_means_the_source_head(source, tmp_path):
    repo, _ = source
    dest = prepare_workspace(pr_query(str(repo), None), tmp_path / "ws", tmp_path)
    assert CANARY in (dest / "calc.py").read_text() and "stashed" not in (dest / "calc.py").read_text()
    assert len(git(dest, "rev-list", "--all").split()) == 1 and leaks(dest, "side work") == []


def test_unknown_commit_and_missing_repository_name_both(source, tmp_path):
    repo, _ = source
    with pytest.raises(UserError, match=r"src has no commit 0123456789abcdef0123456789abcdef01234567"):
        prepare_workspace(pr_query("src", "0123456789abcdef0123456789abcdef01234567"), tmp_path / "a", tmp_path)
    with pytest.raises(UserError, match=r"cannot fetch nowhere for commit abc1234"):
        prepare_workspace(pr_query("nowhere", "abc1234"), tmp_path / "b", tmp_path)
