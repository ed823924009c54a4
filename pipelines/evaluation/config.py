"""Params of eval (the harness settings are pipelines.agent.config's)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipelines.agent.config import EpisodeLimitsParams, HarnessParams
from pipelines.core.config import SPEED_ONLY, Strict
from pipelines.llm.config import SamplingParams

class EvalSuiteParams(Strict):
    """One eval suite and how much of it to run."""

    name: Literal["builtin", "easy", "humaneval", "agencybench"]
    limit: int = Field(0, ge=0, description="the first N tasks of the suite (0 = all)")
    directory: str | None = Field(None, description="agencybench only: the folder of AgencyBench v1 task files "
                                  "(relative to the project root, or absolute)")

    @model_validator(mode="after")
    def _directory_fits(self) -> "EvalSuiteParams":
        if self.name == "agencybench" and not self.directory:
            raise ValueError("an agencybench suite needs directory (the folder of AgencyBench v1 task files)")
        if self.name != "agencybench" and self.directory:
            raise ValueError(f"directory is only for the agencybench suite, not {self.name}")
        return self


class EvalModelParams(Strict):
    """One model under test: an ``llm.models`` entry, optionally with the SFT output on top of it (a local
    folder on the ``local`` backend, or an adapter a server serves by name on the ``openai`` backend)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$", description="label in metrics and the report (base, tuned)")
    model: str = Field(description="a name from llm.models")
    adapter: str | None = Field(None, description="the sft stage's output directory: a PEFT adapter applied on "
                                "`model`'s weights, or full fine-tuned weights used instead of them (local backend)")
    served_adapter: str | None = Field(
        None, min_length=1, description="openai backend: the name under which the server serves the SFT adapter "
        "(vLLM --enable-lora --lora-modules NAME=models/sft); requests name it as their model")
    tool_set: Literal["default", "limi"] | None = Field(
        None, description="the tools this model gets (e.g. the set it was trained with); unset: eval.tool_set")

    @model_validator(mode="after")
    def _one_adapter(self) -> "EvalModelParams":
        if self.adapter and self.served_adapter:
            raise ValueError("adapter (a local folder) and served_adapter (a name on a server) exclude each other")
        return self


#: Sampling of the LIMI paper's evaluation (``eval.sampling_preset: limi``): over eval.sampling's own values.
LIMI_SAMPLING = {"temperature": 0.6, "top_p": 0.95}
SAMPLING_PRESETS = {"limi": LIMI_SAMPLING}

EVAL_METRICS = ("ftfc", "sr_at_r", "rc_at_r", "agencybench_average", "pass_at_k", "pass_hat_k", "tool_call_validity")


class EvalParams(HarnessParams):
    """Base and tuned model as agents over the eval suites: k trials, R rounds of simulated feedback."""

    suites: list[EvalSuiteParams] = Field(
        default_factory=lambda: [EvalSuiteParams(name="builtin", limit=3), EvalSuiteParams(name="humaneval", limit=2)],
        min_length=1)
    k: int = Field(1, ge=1, le=100, description="trials per model and task (pass@k, pass^k)")
    rounds: int = Field(3, ge=1, le=10, description="R: the first attempt plus up to R-1 rounds of feedback per subtask")
    limits: EpisodeLimitsParams = EpisodeLimitsParams(max_steps=8)
    sampling: SamplingParams = SamplingParams(max_tokens=160, temperature=0.0)
    sampling_preset: Literal["limi"] | None = Field(
        None, description="limi: temperature 0.6 and top_p 0.95 (LIMI's evaluation), in place of eval.sampling's; "
        "its max_tokens and seed stay")
    models: list[EvalModelParams] = Field(
        default_factory=lambda: [EvalModelParams(name="base", model="embedded"),
                                 EvalModelParams(name="tuned", model="embedded", adapter="models/sft")],
        min_length=1, description="the first entry is the baseline the others are compared with")
    main_metric: Literal[EVAL_METRICS] = Field(  # type: ignore[valid-type]
        "agencybench_average", description="the number that decides whether a tuned model is the new champion")
    register_champion: bool = Field(True, description="register the adapter in MLflow when it beats the baseline")
    bootstrap: int = Field(1000, ge=100, le=100_000, description="bootstrap resamples behind every 95% interval "
                           "(over tasks, and over trials when k > 1); seeded, so the intervals are reproducible")
    shards: int = Field(1, ge=1, le=1024, json_schema_extra=SPEED_ONLY,
                        description="split the trials into this many DVC stages (eval_shard@0..N-1), by a hash of "
                                    "each trial's key, merged by stage eval; after a change run "
                                    "`python -m pipelines.tools.stage_deps --write`. The outputs do not depend on it")

    @model_validator(mode="before")
    @classmethod
    def _apply_sampling_preset(cls, data):
        """The preset's temperature and top_p over ``sampling``'s (the preset exists to set them)."""
        preset = SAMPLING_PRESETS.get(data.get("sampling_preset")) if isinstance(data, dict) and \
            isinstance(data.get("sampling_preset"), str) else None
        if preset is None:
            return data  # none, or an unknown name the field's own check reports
        sampling = data.get("sampling", cls.model_fields["sampling"].default)
        sampling = sampling.model_dump() if isinstance(sampling, SamplingParams) else sampling
        if not isinstance(sampling, dict):
            return data  # the field's own check reports it
        return {**data, "sampling": {**sampling, **preset}}

    @model_validator(mode="after")
    def _names_unique(self) -> "EvalParams":
        names = [m.name for m in self.models]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"models: names must be unique, {', '.join(twice)} appears more than once")
        return self
