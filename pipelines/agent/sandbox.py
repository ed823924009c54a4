"""Run the agent's shell commands in a bubblewrap sandbox, or in a plain subprocess when the user opts out.

    sandbox = make_sandbox("bwrap", workspace, timeout_s=30, memory_mb=1024)
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

``NoSandbox`` shares the clock, output, memory and file-size limits, the cleared environment and the
quota check, but isolates nothing; its timeout sends SIGTERM to the command's session, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import itertools
import logging
import os
import resource
import select
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol, Sequence

from pipelines.core.errors import UserError

log = logging.getLogger(__name__)

INSTALL_HINT = "sudo apt-get install bubblewrap"
SANDBOX_KINDS = ("bwrap", "none")
_ISOLATION_ONLY = frozenset({"network", "hide_paths", "max_processes", "executable"})
_MIB = 1 << 20
_SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ALWAYS_HIDDEN = (Path("/root"), Path("/home"))
_READ_CHUNK = _MIB
_READS_PER_WAKEUP = 16  # bounded so an endless stream cannot starve the deadline check
_LINGER_S = 0.5  # how long to collect output still in the pipe once the command is gone
_POLL_S = 0.05  # exit polling interval where pidfd_open is missing (Linux before 5.3)
_BASH = shutil.which("bash") or "/bin/bash"


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


@dataclass(frozen=True)
class Limits:
    """Per-command limits that both sandboxes apply the same way."""

    timeout_s: float = 30
    memory_mb: int = 1024
    max_output_bytes: int = 16_000
    disk_quota_mb: int = 256
    max_processes: int = 512
    kill_grace_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("timeout_s", "memory_mb", "max_output_bytes", "disk_quota_mb", "max_processes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"sandbox limit {name} must be positive, got {getattr(self, name)!r}")
        if self.kill_grace_s < 0:
            raise ValueError(f"sandbox limit kill_grace_s must not be negative, got {self.kill_grace_s!r}")

    def shell_prelude(self, *, limit_processes: bool) -> str:
        """A bash script that sets the limits and then runs ``$1`` as ``bash -c "$1"``.

        Memory is RLIMIT_DATA (``ulimit -d``), not RLIMIT_AS (``ulimit -v``): it counts what a process
        can write (heap, private writable mappings), not address space reserved up front or mapped
        libraries, so CUDA torch, the JVM, node and Go still start under 1 GB while a runaway allocation
        fails with ENOMEM. It is per process, so several processes may each use that much; shared
        anonymous mappings escape it, and the tmpfs sizes bound what can hide in /tmp and /dev/shm.
        bash's ``ulimit`` rather than ``prlimit``: the same system call without an extra exec. Set
        inside the sandbox, after bwrap made the user namespace, so RLIMIT_NPROC counts only its tasks.
        """
        data_kib = _cap(resource.RLIMIT_DATA, self.memory_mb * _MIB) // 1024
        file_kib = _cap(resource.RLIMIT_FSIZE, self.disk_quota_mb * _MIB) // 1024  # bash's -f counts KiB too
        parts = ["ulimit", "-c", "0", "-d", str(data_kib), "-f", str(file_kib)]  # -c 0: no core files in the quota
        if limit_processes:
            parts += ["-u", str(_cap(resource.RLIMIT_NPROC, self.max_processes))]
        bash = shlex.quote(_BASH)
        return f'{" ".join(parts)} || exit 125\nexec {bash} -c "$1"'


def _cap(which: int, wanted: int) -> int:
    """``wanted`` lowered to this process's hard limit, which an unprivileged ulimit cannot raise."""
    hard = resource.getrlimit(which)[1]
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)


class NoSandbox:
    """Runs commands as plain subprocesses in the workspace, for users who explicitly opt out of isolation.

    The wall clock, output cap, memory and file-size limits, cleared environment and disk-quota check
    are the same as ``BwrapSandbox``'s; the command can still read and write anything the user can,
    reach the network, and leave behind processes that call ``setsid``.
    """

    def __init__(self, workspace: Path, *, timeout_s: float = 30, memory_mb: int = 1024,
                 max_output_bytes: int = 16_000, disk_quota_mb: int = 256, kill_grace_s: float = 1.0,
                 env: Mapping[str, str] | None = None):
        self.workspace = _prepare_workspace(workspace)
        self.limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb, max_output_bytes=max_output_bytes,
                             disk_quota_mb=disk_quota_mb, kill_grace_s=kill_grace_s)
        self._env = _command_env(self.workspace, env)
        # RLIMIT_NPROC here would count every process the user runs on the host, not just this command's
        self._prelude = self.limits.shell_prelude(limit_processes=False)

    def run(self, command: str, *, timeout_s: float | None = None) -> CommandResult:
        """Run ``bash -c command`` in the workspace under the limits; never raises for a failing command."""
        argv = [_BASH, "-c", self._prelude, "sandbox", command]
        # a session of its own: no controlling terminal to read from or type into
        return _run_limited(argv, self.workspace, self._env, self.limits, timeout_s, new_session=True)


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
        self.workspace = _prepare_workspace(workspace)
        self.limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb, max_output_bytes=max_output_bytes,
                             disk_quota_mb=disk_quota_mb, max_processes=max_processes, kill_grace_s=kill_grace_s)
        self.network = network
        hidden = [*_ALWAYS_HIDDEN, *([] if network else [Path("/run")]), *map(Path, hide_paths)]
        self.hidden_paths = _dedupe(Path(os.path.realpath(p)) for p in hidden)
        if self.workspace in self.hidden_paths:
            raise ValueError(f"hide_paths contains the workspace itself ({self.workspace})")
        self._env = _command_env(self.workspace, env)
        self._prefix = _bwrap_argv(bwrap, self.workspace, network=network, hidden=self.hidden_paths,
                                   tmpfs_bytes=disk_quota_mb * _MIB)
        self._prelude = self.limits.shell_prelude(limit_processes=True)
        self._use_cgroup = os.geteuid() == 0  # the kernel never applies RLIMIT_NPROC to root, even in a userns

    @staticmethod
    def available(executable: str = "bwrap") -> bool:
        """Whether bwrap is installed and can create its namespaces here (probed once, then cached)."""
        return _probe_bwrap(executable)[0] is not None

    def run(self, command: str, *, timeout_s: float | None = None) -> CommandResult:
        """Run ``bash -c command`` in the sandbox under the limits; never raises for a failing command."""
        argv = [*self._prefix, _BASH, "-c", self._prelude, "sandbox", command]
        cgroup = _PidsCgroup.create(self.limits.max_processes) if self._use_cgroup else None
        # bwrap's --new-session already detaches the command from the terminal; setsid here would cost ~3 ms
        if cgroup is None:
            return _run_limited(argv, self.workspace, self._env, self.limits, timeout_s, new_session=False)
        try:
            return _run_limited(cgroup.wrap(argv), self.workspace, self._env, self.limits, timeout_s,
                                new_session=False)
        finally:
            cgroup.remove()


def make_sandbox(kind: str, workspace: Path, **limits) -> BwrapSandbox | NoSandbox:
    """The sandbox of ``kind`` ("bwrap" or "none") for ``workspace``; ``limits`` go to its constructor.

    For "none" the options that only configure isolation (``network``, ``hide_paths``,
    ``max_processes``, ``executable``) are dropped, so one set of settings serves both kinds.
    """
    if kind == "bwrap":
        return BwrapSandbox(workspace, **limits)
    if kind == "none":
        shared = {key: value for key, value in limits.items() if key not in _ISOLATION_ONLY}
        return NoSandbox(workspace, **shared)
    raise ValueError(f"unknown sandbox kind {kind!r}; choose one of {', '.join(SANDBOX_KINDS)}")


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
        argv = _bwrap_argv(path, Path(tmp).resolve(), network=False, hidden=[], tmpfs_bytes=_MIB) + ["true"]
        try:
            probe = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={"PATH": _SEARCH_PATH})
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


def _prepare_workspace(workspace: Path) -> Path:
    """The workspace's real path, created if missing (bwrap binds it at that path)."""
    path = Path(workspace)
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def _command_env(workspace: Path, extra: Mapping[str, str] | None) -> dict[str, str]:
    """The only environment a command sees: nothing from the host, so no API key can leak in."""
    env = {"PATH": _SEARCH_PATH, "HOME": str(workspace), "LANG": "C.UTF-8", "TERM": "dumb"}
    env.update(extra or {})
    return env


_cgroup_names = itertools.count()


class _PidsCgroup:
    """A throwaway pids cgroup that caps a root-run sandbox's task count (RLIMIT_NPROC exempts root)."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def create(cls, max_tasks: int) -> _PidsCgroup | None:
        """A fresh cgroup allowing ``max_tasks`` tasks, or None (with one warning) where none can be made."""
        parent = _pids_hierarchy()
        if parent is None:
            return None
        path = parent / f"limi-sandbox-{os.getpid()}-{next(_cgroup_names)}"
        try:
            path.mkdir()
            (path / "pids.max").write_text(f"{max_tasks}\n")
        except OSError as exc:
            _warn_no_process_limit(f"could not create a pids cgroup under {parent}: {exc}")
            cls(path).remove()
            return None
        return cls(path)

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run by a shell that first moves itself into this cgroup, so every child is born there."""
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.path / "cgroup.procs"), *argv]

    def remove(self) -> None:
        """Kill anything still inside, then delete the cgroup (the kernel refuses while tasks remain)."""
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                for pid in _read_pids(self.path / "cgroup.procs"):
                    _signal(lambda: os.kill(pid, signal.SIGKILL))
                time.sleep(0.002)
        log.warning("could not remove the sandbox cgroup %s", self.path)


def _read_pids(procs: Path) -> list[int]:
    try:
        return [int(line) for line in procs.read_text().split()]
    except OSError:
        return []


@functools.lru_cache(maxsize=None)
def _pids_hierarchy() -> Path | None:
    """Where to create pids cgroups: cgroup v1's pids hierarchy, or the v2 root with pids delegated."""
    v1 = Path("/sys/fs/cgroup/pids")
    if (v1 / "cgroup.procs").exists() and os.access(v1, os.W_OK):
        return _swept(v1)
    v2 = Path("/sys/fs/cgroup")
    try:
        if "pids" in (v2 / "cgroup.controllers").read_text().split():
            if "pids" not in (v2 / "cgroup.subtree_control").read_text().split():
                (v2 / "cgroup.subtree_control").write_text("+pids\n")
            return _swept(v2)
    except OSError as exc:
        _warn_no_process_limit(f"no writable pids cgroup ({exc})")
        return None
    _warn_no_process_limit("no pids cgroup controller is mounted")
    return None


def _swept(parent: Path) -> Path:
    """``parent``, after removing empty sandbox cgroups left by processes that were killed before cleaning up."""
    for stale in parent.glob("limi-sandbox-*-*"):
        try:
            os.kill(int(stale.name.split("-")[2]), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                stale.rmdir()  # fails, harmlessly, if anything still runs inside
        except (ValueError, PermissionError):
            pass
    return parent


@functools.lru_cache(maxsize=None)
def _warn_no_process_limit(reason: str) -> None:
    log.warning("running as root with %s: the sandbox's process limit is not enforced (the kernel exempts "
                "root from RLIMIT_NPROC), so a fork bomb is stopped only by the wall-clock timeout", reason)


def _run_limited(argv: list[str], workspace: Path, env: Mapping[str, str], limits: Limits,
                 timeout_s: float | None, *, new_session: bool) -> CommandResult:
    """Run argv under the clock and output limits, then check the workspace against the disk quota."""
    timeout = limits.timeout_s if timeout_s is None else timeout_s
    if timeout <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout!r}")
    result = _run_captured(argv, cwd=workspace, env=env, timeout_s=timeout, kill_grace_s=limits.kill_grace_s,
                           max_output_bytes=limits.max_output_bytes, new_session=new_session)
    notes = []
    if result.timed_out:
        notes.append(f"[command timed out after {timeout:g} s and was killed]")
    over_quota = _exceeds(workspace, limits.disk_quota_mb * _MIB)
    if over_quota:
        notes.append(f"[workspace is over its {limits.disk_quota_mb} MB disk quota: delete files before going on]")
    if not notes:
        return result
    text = result.output
    sep = "\n" if text and not text.endswith("\n") else ""
    return CommandResult(exit_code=result.exit_code, output=text + sep + "\n".join(notes),
                         timed_out=result.timed_out, truncated_bytes=result.truncated_bytes,
                         duration_s=result.duration_s, quota_exceeded=over_quota)


def _run_captured(argv: list[str], *, cwd: Path, env: Mapping[str, str], timeout_s: float, kill_grace_s: float,
                  max_output_bytes: int, new_session: bool) -> CommandResult:
    """Run argv as a process group leader, reading its merged output as it comes into a bounded buffer.

    On timeout the group gets SIGTERM, then SIGKILL once the leader is gone or ``kill_grace_s`` has
    passed. Whatever is left of the group when the command ends is killed too. ``new_session`` makes
    the group a session of its own as well.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    output = _HeadTail(max_output_bytes)
    if new_session or sys.version_info < (3, 11):  # process_group= arrived in Python 3.11
        grouping = {"start_new_session": True}
    else:
        grouping = {"process_group": 0}
    proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, **grouping)
    watch = _ExitWatch(proc.pid)
    selector = selectors.DefaultSelector()
    timed_out = False
    try:
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        _widen_pipe(fd)
        selector.register(fd, selectors.EVENT_READ)
        if watch.fd is not None:
            selector.register(watch.fd, selectors.EVENT_READ)
        reading = True
        while not watch.exited():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in selector.select(watch.slice(remaining)):
                if key.fd == fd and not _drain(fd, output):
                    selector.unregister(fd)
                    reading = False
        if timed_out:
            _killpg(proc.pid, signal.SIGTERM)
            watch.wait(kill_grace_s)
        # the group id stays ours until the leader is reaped below, so this cannot hit a stranger
        _killpg(proc.pid, signal.SIGKILL)
        if reading:
            if watch.fd is not None:
                selector.unregister(watch.fd)
            _drain_until_eof(fd, selector, output, _LINGER_S)
    finally:
        _killpg(proc.pid, signal.SIGKILL)  # on an exception above, leave nothing running
        selector.close()
        watch.close()
        proc.stdout.close()
        proc.wait()
    text, cut = output.render()
    code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    return CommandResult(exit_code=code, output=text, timed_out=timed_out, truncated_bytes=cut,
                         duration_s=time.monotonic() - started)


def _drain(fd: int, output: _HeadTail) -> bool:
    """Read what the pipe holds into ``output``; False once it reports end of file."""
    for _ in range(_READS_PER_WAKEUP):
        try:
            chunk = os.read(fd, _READ_CHUNK)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        output.feed(chunk)
    return True


def _drain_until_eof(fd: int, selector: selectors.BaseSelector, output: _HeadTail, linger_s: float) -> None:
    """Collect output until end of file, but no longer than ``linger_s`` (an escaped process may hold the pipe)."""
    deadline = time.monotonic() + linger_s
    while (remaining := deadline - time.monotonic()) > 0:
        if selector.select(remaining) and not _drain(fd, output):
            return


def _widen_pipe(fd: int) -> None:
    """Ask for a 1 MiB pipe so a chatty command costs fewer wake-ups (the default is 64 KiB)."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _READ_CHUNK)
    except (AttributeError, OSError):
        pass  # older Python or a capped /proc/sys/fs/pipe-max-size: the default pipe works, only slower


def _killpg(pgid: int, sig: int) -> None:
    _signal(lambda: os.killpg(pgid, sig))


def _signal(send) -> None:
    try:
        send()
    except (ProcessLookupError, PermissionError):
        pass  # already gone


class _ExitWatch:
    """Tells whether a child has exited without reaping it, so its process group id stays safe to signal."""

    def __init__(self, pid: int):
        self.pid = pid
        try:
            self.fd: int | None = os.pidfd_open(pid)  # readable once the child exits: no polling
        except (AttributeError, OSError):
            self.fd = None

    def exited(self) -> bool:
        return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

    def slice(self, remaining: float) -> float:
        """How long one select may block: all of it with a pidfd to wake us, a short poll without."""
        return remaining if self.fd is not None else min(remaining, _POLL_S)

    def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the exit; True if it happened."""
        deadline = time.monotonic() + timeout_s
        while not self.exited():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self.fd is not None:
                select.select([self.fd], [], [], remaining)
            else:
                time.sleep(min(remaining, _POLL_S))
        return True

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _HeadTail:
    """The first and last bytes of a stream of any length, kept in memory bounded by ``limit``."""

    def __init__(self, limit: int):
        self.head_limit = limit // 2
        self.tail_limit = limit - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        view = memoryview(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += view[:room]
            view = view[room:]
        if not view:
            return
        if len(view) >= self.tail_limit:
            self.tail = bytearray(view[len(view) - self.tail_limit:])
        else:
            self.tail += view
            if len(self.tail) > 2 * self.tail_limit:  # trim in batches, not on every small chunk
                del self.tail[:len(self.tail) - self.tail_limit]

    def render(self) -> tuple[str, int]:
        """The kept text, with a note line where the middle was cut, and how many bytes were cut."""
        tail = self.tail[len(self.tail) - self.tail_limit:] if len(self.tail) > self.tail_limit else self.tail
        cut = self.total - len(self.head) - len(tail)
        if cut == 0:
            return (self.head + tail).decode("utf-8", errors="replace"), 0  # one decode: no split character
        head = self.head.decode("utf-8", errors="replace")
        sep = "\n" if head and not head.endswith("\n") else ""
        return f"{head}{sep}[... {cut} bytes cut ...]\n{tail.decode('utf-8', errors='replace')}", cut


def _exceeds(root: Path, limit_bytes: int) -> bool:
    """Whether the files under ``root`` use more than ``limit_bytes`` of disk; stops counting once over."""
    total, seen, stack = 0, set(), [str(root)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue  # vanished or unreadable: the command's business, not the quota's
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir:
                    stack.append(entry.path)
                elif st.st_nlink > 1:  # count a hard-linked file once
                    if (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
                if total > limit_bytes:
                    return True
    return False
