"""Settings of the episode harness, shared by the ``collect`` and ``eval`` params groups.

``CollectParams`` and ``EvalParams`` (``pipelines.core.params``) extend :class:`HarnessParams`, so
``collect.sandbox`` and ``eval.sandbox`` (and the other keys here) are one definition, flat in each
group as params.yaml has them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipelines.core.config import SPEED_ONLY, Strict
from pipelines.llm.config import SamplingParams


class EpisodeLimitsParams(Strict):
    """Bounds of one episode (one subtask in eval)."""

    max_steps: int = Field(20, ge=1)
    max_tokens: int = Field(100_000, ge=256, description="prompt + completion tokens over the episode")
    max_seconds: float = Field(600.0, gt=0)
    max_format_errors: int = Field(3, ge=1)


class HarnessParams(Strict):
    """How episodes run: rounds of feedback, the sandbox and its limits, sampling, episodes at once."""

    rounds: int = Field(3, ge=1, le=10)
    feedback: Literal["requirements", "none"] = Field(
        "requirements", description="what the simulated user says after a failed round: the unmet requirements "
        "in the task's public words, or only that the work is not accepted (pipelines.agent.feedback)")
    tool_set: Literal["default", "limi"] = Field(
        "default", description="the agent's tools: default (bash, read_file, write_file, str_replace, finish) or "
        "limi (SII CLI's run_shell_command, read_file, write_file, replace, glob, search_file_content; the turn "
        "ends with an answer without a tool call) (pipelines.agent.toolsets)")
    sandbox: Literal["bwrap", "none"] = "bwrap"
    command_timeout_s: float = Field(30.0, gt=0)
    memory_mb: int = Field(1024, ge=64)
    # speed-only: results are written in a fixed order whatever the number of episodes at once
    parallel: int = Field(0, ge=0, description="episodes at once; 0 = number of CPUs", json_schema_extra=SPEED_ONLY)
    judge_evidence_tokens: int = Field(
        6000, ge=500, description="what a rubric judge is shown of the work (changed files, command outputs, the "
        "agent's report), in tokens estimated as characters/4 (pipelines.agent.evidence)")
    limits: EpisodeLimitsParams = EpisodeLimitsParams()
    sampling: SamplingParams = SamplingParams()
