"""The base of every params model: strict keys, and the mark for keys that only change speed."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# A key that changes how fast a stage runs, never what it writes: it is no DVC params dep
# (pipelines.tools.stage_deps leaves it out), so changing it reruns nothing.
SPEED_ONLY = {"speed_only": True}


class Strict(BaseModel):
    """Base for every params group: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_default=True)
