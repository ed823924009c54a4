"""The bubblewrap sandbox, and the check that bwrap works here.

    sandbox = BwrapSandbox(workspace, timeout_s=30, memory_mb=1024)
    result = sandbox.run("pytest -q")        # CommandResult(exit_code=0, output="...", ...)

What ``BwrapSandbox`` contains, and how:

- files: the host's ``/`` read-only; the workspace writable at its own path; a private ``/tmp`` and
  ``/dev/shm`` (tmpfs, each capped at the disk quota); ``/dev`` read-only; empty read-only tmpfs over
  ``/root``, ``/home``, ``/run`` (unix sockets such as docker's live there) and every ``hide_paths`` entry.
- network: a namespace of its own with only loopback, unless ``network=True``.
- processes: a PID namespace of its own, so when the command exits the kernel kills whatever it left
  behind; a session of its own (no typing into the caller's terminal); no capabilities; at most
  ``max_processes`` tasks (RLIMIT_NPROC, or a pids cgroup when running as root, which that limit exempts).
- environment: cleared, then PATH, HOME (the workspace), LANG and TERM, plus what ``env`` adds.
- limits per command: wall clock (SIGTERM to bwrap, whose death takes the whole PID namespace down
  with SIGKILL; SIGKILL to its group after ``kill_grace_s``), writable memory per process, size of any
  one file, and output (head and tail kept, the middle cut with a note).
- disk: after each command the workspace is measured and a result over ``disk_quota_mb`` is flagged.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

from pipelines.agent.sandbox.base import (BASH, SEARCH_PATH, CommandResult, SandboxUnavailable, command_env,
                                          prepare_workspace)
from pipelines.agent.sandbox.cgroup import PidsCgroup
from pipelines.agent.sandbox.limits import MIB, Limits
from pipelines.agent.sandbox.process import run_limited

INSTALL_HINT = "sudo apt-get install bubblewrap"
_ALWAYS_HIDDEN = (Path("/root"), Path("/home"))


class BwrapSandbox:
    """Runs commands inside bubblewrap (see the module docstring for what is contained and how).

    ``hide_paths`` are covered with empty read-only directories (or an empty file) inside the sandbox,
    e.g. the repository's ``.dvc`` folder with its credentials; ``/root`` and ``/home`` always are.
    Raises ``SandboxUnavailable`` when bwrap is missing or cannot create namespaces here.
    """

    def __init__(self, workspace: Path, *, timeout_s: float = 30, memory_mb: int = 1024,
                 max_output_bytes: int = 16_000, disk_quota_mb: int = 256, network: bool = False,
                 hide_paths: Sequence[Path] = (), max_processes: int = 512, kill_grace_s: float = 1.0,
                 env: Mapping[str, str] | None = None, executable: str = "bwrap"):
        bwrap = require_bwrap(executable)
        self.workspace = prepare_workspace(workspace)
        self.limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb, max_output_bytes=max_output_bytes,
                             disk_quota_mb=disk_quota_mb, max_processes=max_processes, kill_grace_s=kill_grace_s)
        self.network = network
        hidden = [*_ALWAYS_HIDDEN, *([] if network else [Path("/run")]), *map(Path, hide_paths)]
        self.hidden_paths = _dedupe(Path(os.path.realpath(p)) for p in hidden)
        if self.workspace in self.hidden_paths:
            raise ValueError(f"hide_paths contains the workspace itself ({self.workspace})")
        self._env = command_env(self.workspace, env)
        self._prefix = _bwrap_argv(bwrap, self.workspace, network=network, hidden=self.hidden_paths,
                                   tmpfs_bytes=disk_quota_mb * MIB)
        self._prelude = self.limits.shell_prelude(limit_processes=True)
        self._use_cgroup = os.geteuid() == 0  # the kernel never applies RLIMIT_NPROC to root, even in a userns

    @staticmethod
    def available(executable: str = "bwrap") -> bool:
        """Whether bwrap is installed and can create its namespaces here (probed once, then cached)."""
        return _probe_bwrap(executable)[0] is not None

    def run(self, command: str, *, timeout_s: float | None = None) -> CommandResult:
        """Run ``bash -c command`` in the sandbox under the limits; never raises for a failing command."""
        argv = [*self._prefix, BASH, "-c", self._prelude, "sandbox", command]
        cgroup = PidsCgroup.create(self.limits.max_processes) if self._use_cgroup else None
        # bwrap's --new-session already detaches the command from the terminal; setsid here would cost ~3 ms
        if cgroup is None:
            return run_limited(argv, self.workspace, self._env, self.limits, timeout_s, new_session=False)
        try:
            return run_limited(cgroup.wrap(argv), self.workspace, self._env, self.limits, timeout_s,
                               new_session=False)
        finally:
            cgroup.remove()


def require_bwrap(executable: str = "bwrap") -> str:
    """The path of a bwrap that works here; raises ``SandboxUnavailable`` with the fix otherwise."""
    path, reason = _probe_bwrap(executable)
    if path is None:
        raise SandboxUnavailable(f"{reason}. The agent runs every command in bubblewrap: install it with "
                                 f"`{INSTALL_HINT}`, or explicitly choose the 'none' sandbox (no isolation).")
    return path


@functools.lru_cache(maxsize=None)
def _probe_bwrap(executable: str) -> tuple[str | None, str]:
    """(path, "") when a real sandbox runs ``true``, else (None, why not)."""
    path = shutil.which(executable)
    if path is None:
        return None, f"bubblewrap ({executable}) is not installed"
    with tempfile.TemporaryDirectory(prefix="bwrap-probe-") as tmp:
        argv = _bwrap_argv(path, Path(tmp).resolve(), network=False, hidden=[], tmpfs_bytes=MIB) + ["true"]
        try:
            probe = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={"PATH": SEARCH_PATH})
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"{path} could not be run: {exc}"
    if probe.returncode != 0:
        detail = probe.stderr.strip().splitlines()[-1:] or [f"exit status {probe.returncode}"]
        return None, (f"{path} cannot create a sandbox here ({detail[0]}); unprivileged user namespaces "
                      "may be disabled (kernel.unprivileged_userns_clone, or AppArmor on Ubuntu 24.04)")
    return path, ""


def _bwrap_argv(bwrap: str, workspace: Path, *, network: bool, hidden: Sequence[Path],
                tmpfs_bytes: int) -> list[str]:
    """bwrap's arguments up to the command; mount operations apply in order, so order matters here."""
    ws, tmp = str(workspace), Path("/tmp")
    inside = [p for p in hidden if _within(p, workspace)]
    # the private /tmp already hides what lies under it, and a remount there would find nothing
    outside = [p for p in hidden if p.exists() and not _within(p, workspace) and not _within(p, tmp)]
    argv = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for path in outside:
        argv += _cover(path)
    size = str(tmpfs_bytes)
    argv += ["--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", "/dev/shm"]
    # after the tmpfs mounts, so a workspace under /tmp or a hidden folder is not covered by them
    argv += ["--bind", ws, ws]
    for path in inside:
        if path.exists():
            argv += _cover(path)
    # read-only last: bwrap had to create mount points for the workspace inside these first
    for path in [*outside, *inside]:
        if path.is_dir():
            argv += ["--remount-ro", str(path)]
    argv += ["--remount-ro", "/dev"]  # else files written there would fill memory uncapped
    argv += ["--unshare-all", "--unshare-user"]  # explicit: without a user namespace, fail rather than run
    if network:
        argv.append("--share-net")
    # as uid 0 bwrap keeps every capability unless told; with CAP_SYS_ADMIN the command could unmount the covers
    argv += ["--cap-drop", "ALL", "--die-with-parent", "--new-session", "--chdir", ws]
    return argv


def _cover(path: Path) -> list[str]:
    """bwrap arguments that put something empty over ``path``: a tmpfs for a folder, /dev/null for a file."""
    if path.is_dir():
        return ["--tmpfs", str(path)]
    return ["--ro-bind", "/dev/null", str(path)]


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _dedupe(paths) -> list[Path]:
    return list(dict.fromkeys(paths))
