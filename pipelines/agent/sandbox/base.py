"""What every sandbox is: the protocol, what one command returns, and the workspace and environment it runs in."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol

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

    def run(self, command: str, *, timeout_s: float | None = None) -> CommandResult: ...


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
