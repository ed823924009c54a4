"""The bubblewrap sandbox, and the check that bwrap works here.

    sandbox = BwrapSandbox(workspace, timeout_s=30, memory_mb=1024)
    result = sandbox.run("pytest -q")        # CommandResult(exit_code=0, output="...", ...)
    check = sandbox.run("pytest -q tests/hidden", scratch=True)   # on a throwaway copy of the workspace

What ``BwrapSandbox`` contains, and how:

- files: an allowlist, nothing else. The root is an empty read-only tmpfs holding the system
  directories commands need, read-only: ``/usr`` and ``/bin``, ``/sbin``, ``/lib*`` (recreated as the
  symlinks into ``/usr`` they are on merged-/usr systems), and a minimal ``/etc`` (users, name service,
  the dynamic loader's cache, time zone, ``alternatives``, certificates, shell, Python and JDK defaults);
  ``/proc``; ``/dev`` read-only; a private ``/tmp`` and ``/dev/shm`` (tmpfs, each capped at the disk
  quota); and the workspace writable at its own path. The repository, its virtualenv, ``/root``,
  ``/home``, ``/opt``, ``/var``, ``/run``, ``/mnt``, ``/srv`` and everything else on the host are simply
  not there, so no blocklist has to keep up with where secrets, data or reference solutions live.
  ``hide_paths`` inside the workspace are covered with empty read-only folders (or an empty file).
  ``ro_binds`` add host folders read-only at paths of the caller's choosing (a task's Python
  environment at ``/opt/venv``): named one by one, never a widening of the allowlist.
- network: a namespace of its own with only loopback, unless ``network=True``.
- processes: a PID namespace of its own, so when the command exits the kernel kills whatever it left
  behind; a session of its own (no typing into the caller's terminal); no capabilities; at most
  ``max_processes`` tasks (RLIMIT_NPROC, or a pids cgroup when running as root, which that limit exempts).
- environment: cleared, then PATH, HOME (the workspace), LANG and TERM, plus what ``env`` adds.
- limits per command: wall clock (SIGTERM to bwrap, whose death takes the whole PID namespace down
  with SIGKILL; SIGKILL to its group after ``kill_grace_s``), writable memory per process, size of any
  one file, and output (head and tail kept, the middle cut with a note).
- disk: after each command the workspace is measured and a result over ``disk_quota_mb`` is flagged.
- scratch runs (``run(..., scratch=True)``, what hidden checks use): the command sees a throwaway copy
  of the workspace bound at the workspace's own path, deleted afterwards, so nothing the check (or
  code the agent planted for it to import) writes reaches the workspace the agent goes on with.
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
                                          prepare_workspace, scratch_copy)
from pipelines.agent.sandbox.cgroup import PidsCgroup
from pipelines.agent.sandbox.limits import MIB, Limits
from pipelines.agent.sandbox.process import run_limited

INSTALL_HINT = "sudo apt-get install bubblewrap"
# the host's system directories, bound read-only (or recreated as symlinks into /usr) when present
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# what of /etc commands need: users and groups (ls -l, whoami, git), name service and hosts, the dynamic
# loader, the time zone, Debian's alternatives (/usr/bin/awk points there), TLS roots, MIME types, shell
# start-up files, Python's and git's system defaults and the JDK's configuration (Debian links the JDK's
# jvm.cfg and security files into /etc/java-<N>-openjdk: without it javac and java cannot start); present
# entries only, everything else stays out
ETC_ENTRIES = ("passwd", "group", "hosts", "nsswitch.conf", "resolv.conf", "host.conf", "gai.conf", "ld.so.cache",
               "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "alternatives", "ssl", "ca-certificates",
               "mime.types", "os-release", "debian_version", "bash.bashrc", "profile", "inputrc", "python3*",
               "gitconfig", "java-*")


class BwrapSandbox:
    """Runs commands inside bubblewrap (see the module docstring for what is contained and how).

    ``hide_paths`` inside the workspace (e.g. a folder of answers copied along with it) are covered
    with empty read-only directories (or an empty file) inside the sandbox. Paths outside the workspace
    need nothing: the sandbox mounts only the system directories and the workspace, so they are not
    there anyway (the parameter accepts them, so callers can pass the repository's ``.dvc`` regardless).
    ``ro_binds`` maps a path inside the sandbox to the host folder shown there read-only (see
    :func:`check_ro_binds` for what is refused).
    Raises ``SandboxUnavailable`` when bwrap is missing or cannot create namespaces here.
    """

    def __init__(self, workspace: Path, *, timeout_s: float = 30, memory_mb: int = 1024,
                 max_output_bytes: int = 16_000, disk_quota_mb: int = 256, network: bool = False,
                 hide_paths: Sequence[Path] = (), max_processes: int = 512, kill_grace_s: float = 1.0,
                 env: Mapping[str, str] | None = None, executable: str = "bwrap",
                 ro_binds: Mapping[str, Path] | None = None):
        self._bwrap = require_bwrap(executable)
        self.workspace = prepare_workspace(workspace)
        self.limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb, max_output_bytes=max_output_bytes,
                             disk_quota_mb=disk_quota_mb, max_processes=max_processes, kill_grace_s=kill_grace_s)
        self.network = network
        resolved = _dedupe(Path(os.path.realpath(p)) for p in hide_paths)
        if self.workspace in resolved:
            raise ValueError(f"hide_paths contains the workspace itself ({self.workspace})")
        # only what lies inside the workspace is mounted and so needs covering; the rest is absent already
        self.hidden_paths = [p for p in resolved if _within(p, self.workspace)]
        self.ro_binds = check_ro_binds(ro_binds or {}, self.workspace)
        self._env = command_env(self.workspace, env)
        self._prefix = self._argv(self.workspace)
        self._prelude = self.limits.shell_prelude(limit_processes=True)
        self._use_cgroup = os.geteuid() == 0  # the kernel never applies RLIMIT_NPROC to root, even in a userns

    @staticmethod
    def available(executable: str = "bwrap") -> bool:
        """Whether bwrap is installed and can create its namespaces here (probed once, then cached)."""
        return _probe_bwrap(executable)[0] is not None

    def run(self, command: str, *, timeout_s: float | None = None, scratch: bool = False) -> CommandResult:
        """Run ``bash -c command`` in the sandbox under the limits; never raises for a failing command.

        With ``scratch`` the command runs against a copy of the workspace made for it outside the
        workspace and bound at the workspace's path (so paths read the same), deleted afterwards.
        """
        if not scratch:
            return self._run(self._prefix, self.workspace, command, timeout_s)
        with scratch_copy(self.workspace) as copy:
            return self._run(self._argv(copy), copy, command, timeout_s)

    def _argv(self, source: Path) -> list[str]:
        """bwrap's arguments with ``source`` (the workspace or a scratch copy) bound at the workspace's path."""
        return _bwrap_argv(self._bwrap, self.workspace, source=source, network=self.network,
                           hidden=self.hidden_paths, tmpfs_bytes=self.limits.disk_quota_mb * MIB,
                           ro_binds=self.ro_binds)

    def _run(self, prefix: list[str], source: Path, command: str, timeout_s: float | None) -> CommandResult:
        """One command behind ``prefix``; ``source`` is the host folder it writes to (quota measured there)."""
        argv = [*prefix, BASH, "-c", self._prelude, "sandbox", command]
        cgroup = PidsCgroup.create(self.limits.max_processes) if self._use_cgroup else None
        # bwrap's --new-session already detaches the command from the terminal; setsid here would cost ~3 ms
        if cgroup is None:
            return run_limited(argv, source, self._env, self.limits, timeout_s, new_session=False)
        try:
            return run_limited(cgroup.wrap(argv), source, self._env, self.limits, timeout_s, new_session=False)
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


def check_ro_binds(binds: Mapping[str, Path], workspace: Path) -> dict[str, Path]:
    """``binds`` (path inside -> host folder) checked: each inside path absolute and clear of ``/``, the
    system directories, ``/etc``, ``/proc``, ``/dev``, ``/tmp`` and the workspace (so an extra bind can neither
    cover what the sandbox needs nor hide in or over the agent's files); each host folder existing.
    Raises ValueError naming the offending path."""
    checked: dict[str, Path] = {}
    reserved = [Path(p) for p in (*SYSTEM_DIRS, "/etc", "/proc", "/dev", "/tmp")]
    for inside, host in binds.items():
        target = Path(inside)
        if not target.is_absolute() or target == Path("/") or ".." in target.parts:
            raise ValueError(f"read-only bind target {inside!r} must be an absolute path below /")
        clash = [r for r in (*reserved, workspace) if _within(target, r) or _within(r, target)]
        if clash:
            raise ValueError(f"read-only bind target {inside} overlaps {clash[0]}, which the sandbox mounts itself")
        source = Path(os.path.realpath(host))
        if not source.is_dir():
            raise ValueError(f"read-only bind source {host} (for {inside}) is not a folder")
        checked[str(target)] = source
    return checked


def _bwrap_argv(bwrap: str, workspace: Path, *, network: bool, hidden: Sequence[Path], tmpfs_bytes: int,
                source: Path | None = None, ro_binds: Mapping[str, Path] | None = None) -> list[str]:
    """bwrap's arguments up to the command; mount operations apply in order, so order matters here.

    ``source`` is the host folder bound at the workspace's path: the workspace itself unless a scratch
    copy stands in for it. ``hidden`` must lie inside the workspace; ``ro_binds`` (checked by
    :func:`check_ro_binds`) lie outside it.
    """
    ws = str(workspace)
    argv = [bwrap, *_system_mounts(), "--dev", "/dev", "--proc", "/proc"]
    size = str(tmpfs_bytes)
    argv += ["--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", "/dev/shm"]
    # after the tmpfs mounts, so a workspace under /tmp is not covered by them
    argv += ["--bind", str(source or workspace), ws]
    for inside, host in (ro_binds or {}).items():
        argv += ["--ro-bind", str(host), inside]
    covered = [path for path in hidden if path.exists()]
    for path in covered:
        argv += _cover(path)
    # read-only last: bwrap had to create mount points inside these first
    for path in covered:
        if path.is_dir():
            argv += ["--remount-ro", str(path)]
    argv += ["--remount-ro", "/dev"]  # else files written there would fill memory uncapped
    # the root is bwrap's own tmpfs: read-only, so nothing can be stored outside the capped mounts
    argv += ["--remount-ro", "/"]
    argv += ["--unshare-all", "--unshare-user"]  # explicit: without a user namespace, fail rather than run
    if network:
        argv.append("--share-net")
    # as uid 0 bwrap keeps every capability unless told; with CAP_SYS_ADMIN the command could unmount the covers
    argv += ["--cap-drop", "ALL", "--die-with-parent", "--new-session", "--chdir", ws]
    return argv


@functools.lru_cache(maxsize=None)
def _system_mounts() -> tuple[str, ...]:
    """The allowlist: the host's system directories and the few ``/etc`` entries, read-only (read once).

    A merged-/usr system's ``/bin`` -> ``usr/bin`` and an ``/etc`` entry pointing into ``/usr`` (the
    time zone, ``os-release``) are recreated as the same symlinks, which is cheaper than a mount; an
    ``/etc`` entry pointing elsewhere (``resolv.conf`` into ``/run``) is bound with its target's content.
    """
    args: list[str] = []
    for name in SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink() and _within(path.resolve(), Path("/usr")):
            args += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
    etc = Path("/etc")
    for pattern in ETC_ENTRIES:
        for path in sorted(etc.glob(pattern)):
            if path.is_symlink() and _within(path.resolve(), Path("/usr")):
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.exists():  # bwrap follows a source symlink, so a link elsewhere arrives as its target
                args += ["--ro-bind", str(path), str(path)]
    return tuple(args)


def _cover(path: Path) -> list[str]:
    """bwrap arguments that put something empty over ``path``: a tmpfs for a folder, /dev/null for a file."""
    if path.is_dir():
        return ["--tmpfs", str(path)]
    return ["--ro-bind", "/dev/null", str(path)]


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _dedupe(paths) -> list[Path]:
    return list(dict.fromkeys(paths))
