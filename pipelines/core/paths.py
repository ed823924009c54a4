"""Where things live, resolved against the repository root rather than the current directory."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The project root: ``LIMI_ROOT`` if set, else the nearest parent holding ``dvc.yaml`` or ``params.yaml``.

    Falls back to the current directory so the standalone entry points work anywhere.
    """
    env = os.environ.get("LIMI_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "dvc.yaml").exists() or (candidate / "params.yaml").exists():
            return candidate
    return here


def params_file() -> Path:
    """The params.yaml the stages read (``LIMI_PARAMS`` overrides, for tests and experiments)."""
    env = os.environ.get("LIMI_PARAMS")
    return Path(env).resolve() if env else repo_root() / "params.yaml"


def relative_to_root(path: Path) -> str:
    """``path`` resolved and relative to the project root (the form ``WorkspaceSpec.dir`` documents), else
    resolved and absolute (a task set outside the project, e.g. in a test's temp dir)."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(repo_root().resolve()).as_posix()
    except ValueError:
        return str(resolved)


def display_path(path: str | Path, root: Path | None = None) -> str:
    """``path`` relative to the project root (default ``repo_root()``) when inside it, else as given.

    What outputs record instead of absolute paths, so that they do not depend on where the project lives.
    """
    path = Path(path)
    try:
        return path.resolve().relative_to((root or repo_root()).resolve()).as_posix()
    except ValueError:
        return str(path)
