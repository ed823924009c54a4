"""Per-command limits both sandboxes apply the same way: memory and file size (set by a shell prelude),
output kept to its head and tail, and the workspace's disk quota. The wall clock is kept by
:mod:`pipelines.agent.sandbox.process`."""

from __future__ import annotations

import os
import resource
import shlex
from dataclasses import dataclass
from pathlib import Path

from pipelines.agent.sandbox.base import BASH

MIB = 1 << 20


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
        data_kib = _cap(resource.RLIMIT_DATA, self.memory_mb * MIB) // 1024
        file_kib = _cap(resource.RLIMIT_FSIZE, self.disk_quota_mb * MIB) // 1024  # bash's -f counts KiB too
        parts = ["ulimit", "-c", "0", "-d", str(data_kib), "-f", str(file_kib)]  # -c 0: no core files in the quota
        if limit_processes:
            parts += ["-u", str(_cap(resource.RLIMIT_NPROC, self.max_processes))]
        bash = shlex.quote(BASH)
        return f'{" ".join(parts)} || exit 125\nexec {bash} -c "$1"'


def _cap(which: int, wanted: int) -> int:
    """``wanted`` lowered to this process's hard limit, which an unprivileged ulimit cannot raise."""
    hard = resource.getrlimit(which)[1]
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)



class HeadTail:
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


def exceeds(root: Path, limit_bytes: int) -> bool:
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
