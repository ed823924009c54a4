"""Settings of the episode harness, shared by the ``collect`` and ``eval`` params groups.

``CollectParams`` and ``EvalParams`` (``pipelines.core.params``) extend :class:`HarnessParams`, so
``collect.sandbox`` and ``eval.sandbox`` (and the other keys here) are one definition, flat in each
group as params.yaml has them. This module imports nothing of the project: every stage reads params.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class SamplingParams(_Strict):
    """Sampling settings passed to a chat model's every call."""

    max_tokens: int = Field(256, ge=1, le=131072)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = 0


class EpisodeLimitsParams(_Strict):
    """Bounds of one episode (one subtask in eval)."""

    max_steps: int = Field(20, ge=1)
    max_tokens: int = Field(100_000, ge=256, description="prompt + completion tokens over the episode")
    max_seconds: float = Field(600.0, gt=0)
    max_format_errors: int = Field(3, ge=1)


class HarnessParams(_Strict):
    """How episodes run: rounds of feedback, the sandbox and its limits, sampling, episodes at once."""

    rounds: int = Field(3, ge=1, le=10)
    sandbox: Literal["bwrap", "none"] = "bwrap"
    command_timeout_s: float = Field(30.0, gt=0)
    memory_mb: int = Field(1024, ge=64)
    parallel: int = Field(0, ge=0, description="episodes at once; 0 = number of CPUs")
    limits: EpisodeLimitsParams = EpisodeLimitsParams()
    sampling: SamplingParams = SamplingParams()
