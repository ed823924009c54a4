"""The ``none`` sandbox: plain subprocesses under the same limits, for users who explicitly opt out of isolation.

It shares the clock, output, memory and file-size limits, the cleared environment and the quota check
with ``BwrapSandbox``, but isolates nothing; its timeout sends SIGTERM to the command's session, then SIGKILL.
A scratch run (``run(..., scratch=True)``) works in a throwaway copy of the workspace at the copy's own
path, so a check's writes inside the workspace are discarded, but nothing else is kept from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from pipelines.agent.sandbox.base import BASH, CommandResult, command_env, prepare_workspace, scratch_copy
from pipelines.agent.sandbox.limits import Limits
from pipelines.agent.sandbox.process import run_limited


class NoSandbox:
    """Runs commands as plain subprocesses in the workspace, for users who explicitly opt out of isolation.

    The wall clock, output cap, memory and file-size limits, cleared environment and disk-quota check
    are the same as ``BwrapSandbox``'s; the command can still read and write anything the user can,
    reach the network, and leave behind processes that call ``setsid``.
    """

    def __init__(self, workspace: Path, *, timeout_s: float = 30, memory_mb: int = 1024,
                 max_output_bytes: int = 16_000, disk_quota_mb: int = 256, kill_grace_s: float = 1.0,
                 env: Mapping[str, str] | None = None):
        self.workspace = prepare_workspace(workspace)
        self.limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb, max_output_bytes=max_output_bytes,
                             disk_quota_mb=disk_quota_mb, kill_grace_s=kill_grace_s)
        self._extra_env = dict(env or {})
        self._env = command_env(self.workspace, env)
        # RLIMIT_NPROC here would count every process the user runs on the host, not just this command's
        self._prelude = self.limits.shell_prelude(limit_processes=False)

    def run(self, command: str, *, timeout_s: float | None = None, scratch: bool = False) -> CommandResult:
        """Run ``bash -c command`` in the workspace under the limits; never raises for a failing command.

        With ``scratch`` the command runs in a copy of the workspace made for it outside the workspace
        (as HOME too), deleted afterwards. There is no isolation to map the copy to the workspace's path:
        the command sees the copy's path, and an absolute path into the workspace still reaches the
        workspace itself.
        """
        if not scratch:
            return self._run(command, self.workspace, self._env, timeout_s)
        with scratch_copy(self.workspace) as copy:
            return self._run(command, copy, command_env(copy, self._extra_env), timeout_s)

    def _run(self, command: str, cwd: Path, env: Mapping[str, str], timeout_s: float | None) -> CommandResult:
        argv = [BASH, "-c", self._prelude, "sandbox", command]
        # a session of its own: no controlling terminal to read from or type into
        return run_limited(argv, cwd, env, self.limits, timeout_s, new_session=True)
