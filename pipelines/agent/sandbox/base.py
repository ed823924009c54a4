"""What every sandbox is: the protocol, what one command returns, and the workspace and environment it runs in."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Protocol

from pipelines.core.errors import UserError

SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASH = shutil.which("bash") or "/bin/bash"


@dataclass(frozen=True)
class CommandResult:
    """What one command did.

    ``exit_code`` follows the shell: 128+N when a signal N killed the command. ``output`` is stdout and
    stderr merged in the order written, decoded as UTF-8 with replacement characters, with notes about
    cut output, a timeout or the disk quota appended on their own lines.
    """

    exit_code: int
    output: str
    timed_out: bool
    truncated_bytes: int
    duration_s: float
    quota_exceeded: bool = False


class SandboxUnavailable(UserError):
    """bubblewrap is missing or cannot set up its namespaces on this machine."""


class Sandbox(Protocol):
    """Runs one shell command at a time with ``workspace`` as working directory."""

    workspace: Path

    def run(self, command: str, *, timeout_s: float | None = None, scratch: bool = False) -> CommandResult:
        """Run ``command``; with ``scratch`` against a throwaway copy of the workspace (for hidden checks),
        so that nothing the command writes reaches the workspace itself."""


def prepare_workspace(workspace: Path) -> Path:
    """The workspace's real path, created if missing (bwrap binds it at that path)."""
    path = Path(workspace)
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def command_env(workspace: Path, extra: Mapping[str, str] | None) -> dict[str, str]:
    """The only environment a command sees: nothing from the host, so no API key can leak in."""
    env = {"PATH": SEARCH_PATH, "HOME": str(workspace), "LANG": "C.UTF-8", "TERM": "dumb",
           # a rerun of an episode must read the same: no bytecode (it embeds mtimes) in the workspace's
           # diff, and Python's str hashing (set and dict-of-set order in printed output) fixed
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
    env.update(extra or {})
    return env


@contextlib.contextmanager
def scratch_copy(workspace: Path) -> Iterator[Path]:
    """A copy of ``workspace`` (``.git`` included, symlinks kept as links) in a fresh folder outside it,
    deleted on exit, whatever ran in it.

    Only regular files, folders and symlinks are copied: a FIFO or socket the agent left would block or
    fail the copy, and no check needs one. A file that cannot be read is left out rather than failing
    the check's run, which then sees the workspace without it.
    """
    workspace = Path(workspace)
    base = Path(tempfile.gettempdir()).resolve()
    if base == workspace or workspace in base.parents:  # TMPDIR inside the workspace: use its parent
        base = workspace.parent
    holder = Path(tempfile.mkdtemp(prefix="limi-scratch-", dir=base))
    copy = holder / workspace.name
    try:
        try:
            shutil.copytree(workspace, copy, symlinks=True, copy_function=_copy_regular)
        except shutil.Error:
            pass  # unreadable files: copytree copied everything else before reporting them
        yield copy
    finally:
        shutil.rmtree(holder, onerror=_force_remove)


def _copy_regular(src: str, dst: str) -> None:
    """``shutil.copy2`` for regular files; anything else (FIFO, socket, device) is skipped."""
    if stat.S_ISREG(os.lstat(src).st_mode):
        shutil.copy2(src, dst)


def _force_remove(function, path: str, excinfo) -> None:
    """rmtree's error handler: a command may leave read-only folders behind; make them writable and retry."""
    parent = os.path.dirname(path)
    os.chmod(parent, stat.S_IRWXU)
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, stat.S_IRWXU)
        shutil.rmtree(path, onerror=_force_remove)
    else:
        os.unlink(path)
