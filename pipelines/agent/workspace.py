"""Per-episode workspaces: laid out from a query's spec, under git so the final diff is known."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from pipelines.core.errors import UserError
from pipelines.core.schema import Query

GIT_ID = ["-c", "user.email=agent@workspace.invalid", "-c", "user.name=workspace", "-c", "commit.gpgsign=false"]
# Run inside the sandbox: the agent may have written .git/config, so the host never runs git there again.
DIFF_COMMAND = ("git -c core.fsmonitor=false -c core.hooksPath=/dev/null add -A >/dev/null 2>&1; "
                "git -c core.fsmonitor=false -c core.hooksPath=/dev/null diff --cached --no-color HEAD")
MAX_SNAPSHOT_BYTES = 1 << 20


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


def _checkout(repo: str, commit: str | None, dest: Path, root: Path) -> None:
    source = repo if "://" in repo or repo.startswith("git@") else str((root / repo).resolve())
    try:
        subprocess.run(["git", "clone", "-q", "--no-checkout", source, str(dest)], check=True, capture_output=True,
                       text=True, timeout=300)
        subprocess.run(["git", "-C", str(dest), "checkout", "-q", "--detach", commit or "HEAD"], check=True,
                       capture_output=True, text=True, timeout=300)
    except subprocess.CalledProcessError as exc:
        raise UserError(f"cannot check out {repo} at {commit}: {exc.stderr.strip()[:300]}") from None
    # drop the remote so the agent cannot see later history (and the fix) through it
    subprocess.run(["git", "-C", str(dest), "remote", "remove", "origin"], capture_output=True)


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
