"""Run one command under the wall clock: a process group read into a bounded buffer, killed on timeout,
then checked against the disk quota."""

from __future__ import annotations

import fcntl
import os
import select
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping

from pipelines.agent.sandbox.base import CommandResult
from pipelines.agent.sandbox.limits import MIB, HeadTail, Limits, exceeds

_READ_CHUNK = MIB
_READS_PER_WAKEUP = 16  # bounded so an endless stream cannot starve the deadline check
_LINGER_S = 0.5  # how long to collect output still in the pipe once the command is gone
_POLL_S = 0.05  # exit polling interval where pidfd_open is missing (Linux before 5.3)


def run_limited(argv: list[str], workspace: Path, env: Mapping[str, str], limits: Limits,
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
    over_quota = exceeds(workspace, limits.disk_quota_mb * MIB)
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
    output = HeadTail(max_output_bytes)
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


def _drain(fd: int, output: HeadTail) -> bool:
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


def _drain_until_eof(fd: int, selector: selectors.BaseSelector, output: HeadTail, linger_s: float) -> None:
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
    send_signal(lambda: os.killpg(pgid, sig))


def send_signal(send) -> None:
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
