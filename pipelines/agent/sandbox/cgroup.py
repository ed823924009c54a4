"""A pids cgroup per command, for a sandbox run as root (the kernel exempts root from RLIMIT_NPROC)."""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import signal
import time
from pathlib import Path

from pipelines.agent.sandbox.process import send_signal

log = logging.getLogger(__name__)

_cgroup_names = itertools.count()


class PidsCgroup:
    """A throwaway pids cgroup that caps a root-run sandbox's task count (RLIMIT_NPROC exempts root)."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def create(cls, max_tasks: int) -> PidsCgroup | None:
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
                    send_signal(lambda: os.kill(pid, signal.SIGKILL))
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
