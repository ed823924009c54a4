"""Per-episode workspaces: laid out from a query's spec, under git so the final diff is known."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from pipelines.core.errors import UserError
from pipelines.core.schema import Query

GIT_ID = ["-c", "user.email=agent@workspace.invalid", "-c", "user.name=workspace", "-c", "commit.gpgsign=false"]
# Run inside the sandbox: the agent may have written .git/config, so the host never runs git there again.
DIFF_COMMAND = ("git -c core.fsmonitor=false -c core.hooksPath=/dev/null add -A >/dev/null 2>&1; "
                "git -c core.fsmonitor=false -c core.hooksPath=/dev/null diff --cached --no-color HEAD")
MAX_SNAPSHOT_BYTES = 1 << 20
BASE_GIT = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "core.autocrlf=false",
            "-c", f"core.attributesFile={os.devnull}", "-c", "commit.gpgsign=false", "-c", "gc.auto=0"]
#: The base commit of a PR workspace: fixed names and dates, so the same base always gets the same commit id.
BASE_COMMIT_ENV = {"GIT_AUTHOR_NAME": "workspace", "GIT_AUTHOR_EMAIL": "agent@workspace.invalid",
                   "GIT_COMMITTER_NAME": "workspace", "GIT_COMMITTER_EMAIL": "agent@workspace.invalid",
                   "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z"}


def prepare_workspace(query: Query, dest: Path, root: Path) -> Path:
    """Lay out ``query``'s workspace in the empty directory ``dest`` and commit it as the baseline."""
    spec = query.workspace
    dest.mkdir(parents=True, exist_ok=True)
    if spec.git:
        _checkout(spec.git, spec.commit, dest, root)
    if spec.dir:
        src = (root / spec.dir).resolve()
        if not src.is_relative_to(root.resolve()):
            raise UserError(f"query {query.id}: workspace.dir {spec.dir!r} points outside the repository")
        if not src.is_dir():
            raise UserError(f"query {query.id}: workspace.dir {spec.dir!r} is not a directory")
        shutil.copytree(src, dest, dirs_exist_ok=True, symlinks=True,
                        ignore=shutil.ignore_patterns(".keep", "__pycache__"))
    for name, text in spec.files.items():
        path = dest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if not (dest / ".git").exists():
        _git(dest, "init", "-q")
        _git(dest, "add", "-A")
        _git(dest, *GIT_ID, "commit", "-q", "--allow-empty", "-m", "task baseline")
    return dest


def lay_out_commit(repo: str, commit: str | None, dest: Path, root: Path) -> None:
    """``repo`` (a path under ``root``, a git bundle or a URL) at ``commit`` in the empty folder ``dest``, as the
    one-commit repository an episode's workspace is (see :func:`_checkout`)."""
    dest.mkdir(parents=True, exist_ok=True)
    _checkout(repo, commit, dest, root)


def _checkout(repo: str, commit: str | None, dest: Path, root: Path) -> None:
    """Lay out ``repo``'s tree at ``commit`` (default HEAD) in ``dest`` as a fresh repository of one commit.

    A clone would keep the history past the base (the default branch, other refs, packs, reflogs), so
    ``git log --all -p`` inside the episode would print the fix. Instead the commit alone is fetched into a
    scratch repository outside ``dest`` (removed afterwards), its tree is written into ``dest`` and
    committed once more with a fixed author, committer and dates: ``dest`` holds no object, ref, remote
    or hook of the source, and a rerun makes the same commit id. Submodules are left empty.
    """
    source = repo if "://" in repo or repo.startswith("git@") else str((root / repo).resolve())
    wanted = commit or "HEAD"
    with tempfile.TemporaryDirectory(prefix="limi-base-") as tmp:
        scratch = Path(tmp)
        _base_git(scratch, "init", "-q", "--bare", "--template=")
        _base_git(scratch, "remote", "add", "origin", source)
        try:
            sha = _fetch_commit(scratch, repo, wanted)
            # read-tree, not archive: export-ignore and export-subst attributes must not change the base tree;
            # the user's config as for a fetch, since blobs left out by a blobless fetch come from origin now
            proc = _base_git(scratch, "--work-tree", str(dest), "read-tree", "--reset", "-u", sha, check=False,
                             timeout=300, user_config=True)
        except subprocess.TimeoutExpired as exc:
            raise UserError(f"cannot fetch {repo} for commit {wanted}: git took over {exc.timeout:.0f}s") from None
        if proc.returncode != 0:
            raise UserError(f"cannot lay out {repo} at {wanted}: {proc.stderr.strip()[:300]}")
    _base_git(dest, "init", "-q", "--template=")
    _base_git(dest, "symbolic-ref", "HEAD", "refs/heads/main")
    _base_git(dest, "add", "-A", "--force")  # files the tree's own .gitignore names are part of the base too
    _base_git(dest, "commit", "-q", "--allow-empty", "--no-verify", "-m", f"base {sha}", env=BASE_COMMIT_ENV)


def _fetch_commit(scratch: Path, repo: str, wanted: str) -> str:
    """Fetch ``wanted`` from ``scratch``'s origin and return its full id.

    First the commit alone (shallow), which servers allow for a full id; else (a short id, or a server that
    refuses ids) the branches and tags without their blobs, which come on demand when the tree is written.
    """
    shallow = _base_git(scratch, "fetch", "-q", "--no-tags", "--depth", "1", "origin", wanted, check=False,
                        timeout=300, user_config=True)
    if shallow.returncode == 0 and (sha := _resolve(scratch, "FETCH_HEAD")):
        return sha
    full = _base_git(scratch, "fetch", "-q", "--no-tags", "--filter=blob:none", "origin",
                     "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*", check=False, timeout=300,
                     user_config=True)
    if full.returncode != 0:
        raise UserError(f"cannot fetch {repo} for commit {wanted}: {full.stderr.strip()[:300]}")
    sha = _resolve(scratch, wanted)
    if sha is None:
        raise UserError(f"{repo} has no commit {wanted} (workspace.commit): "
                        f"{shallow.stderr.strip()[:200] or 'not found after fetching its branches and tags'}")
    return sha


def _resolve(scratch: Path, rev: str) -> str | None:
    """The full id of the commit ``rev`` names in ``scratch``, or None."""
    proc = _base_git(scratch, "rev-parse", "-q", "--verify", f"{rev}^{{commit}}", check=False)
    return (proc.stdout.strip() or None) if proc.returncode == 0 else None


def _base_git(cwd: Path, *args: str, check: bool = True, timeout: int = 120, user_config: bool = False,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run git in ``cwd`` with hooks, line-ending rewrites and user attributes off. Without ``user_config``
    the system and global config are not read either, so a user's settings cannot change the laid-out
    base; fetches read them (credentials, proxies, URL rewrites)."""
    isolated = {} if user_config else {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    try:
        return subprocess.run(["git", *BASE_GIT, *args], cwd=cwd, check=check, capture_output=True, text=True,
                              errors="replace", timeout=timeout, env={**os.environ, **isolated, **(env or {})})
    except subprocess.CalledProcessError as exc:
        raise UserError(f"git {args[0]} failed in {cwd}: {exc.stderr.strip()[:300]}") from None


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=120)


def snapshot_files(directory: Path, max_bytes: int = MAX_SNAPSHOT_BYTES) -> dict[str, str]:
    """{relative path: text} of the text files under ``directory`` (not .git; binary and huge files skipped)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink() or path.stat().st_size > max_bytes:
                continue
            data = path.read_bytes()
            if b"\0" in data[:8192]:
                continue
            try:
                out[str(path.relative_to(directory))] = data.decode("utf-8")
            except UnicodeDecodeError:
                continue
    return out
