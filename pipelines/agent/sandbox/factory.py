"""Choose the sandbox by name, as params.yaml does (``bwrap`` or ``none``)."""

from __future__ import annotations

from pathlib import Path

from pipelines.agent.sandbox.bwrap import BwrapSandbox
from pipelines.agent.sandbox.plain import NoSandbox

SANDBOX_KINDS = ("bwrap", "none")
_ISOLATION_ONLY = frozenset({"network", "hide_paths", "max_processes", "executable", "ro_binds"})


def make_sandbox(kind: str, workspace: Path, **limits) -> BwrapSandbox | NoSandbox:
    """The sandbox of ``kind`` ("bwrap" or "none") for ``workspace``; ``limits`` go to its constructor.

    For "none" the options that only configure isolation (``network``, ``hide_paths``,
    ``max_processes``, ``executable``, ``ro_binds``: without isolation a host folder is simply used
    where it is) are dropped, so one set of settings serves both kinds.
    """
    if kind == "bwrap":
        return BwrapSandbox(workspace, **limits)
    if kind == "none":
        shared = {key: value for key, value in limits.items() if key not in _ISOLATION_ONLY}
        return NoSandbox(workspace, **shared)
    raise ValueError(f"unknown sandbox kind {kind!r}; choose one of {', '.join(SANDBOX_KINDS)}")
