"""The model layer's one seam: ``chat(messages, tools, **sampling) -> Reply``.

Messages and tools are in OpenAI chat form. A reply's assistant message carries parsed
``tool_calls`` whose ``function.arguments`` is a dict (the LIMI dataset's form), never a string.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from pipelines.core.errors import ModelError


@dataclass
class Usage:
    """Token and time accounting for one request (summed over retries that produced nothing)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    seconds: float = 0.0
    cost_usd: float = 0.0
    attempts: int = 1
    batch_size: int = 1  # how many requests were generated together with this one (local backend)

    def add(self, other: "Usage") -> None:
        """Accumulate another request's usage into this one (for per-episode totals)."""
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_tokens += other.cached_tokens
        self.seconds += other.seconds
        self.cost_usd += other.cost_usd
        self.attempts += other.attempts
        self.batch_size = max(self.batch_size, other.batch_size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Reply:
    """One assistant turn.

    ``format_error`` is set when the model produced text that claims to be a tool call but cannot be
    parsed; the agent shows it to the model instead of crashing. ``raw`` keeps the unparsed text.
    """

    message: dict[str, Any]
    usage: Usage = field(default_factory=Usage)
    format_error: str | None = None
    finish_reason: str = "stop"
    raw: str | None = None

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        return self.message.get("tool_calls") or []

    @property
    def content(self) -> str:
        return self.message.get("content") or ""


class EndpointError(ModelError):
    """The model could not be reached or kept failing: an infrastructure error, not the agent's fault."""


class ContextLengthError(ModelError):
    """The conversation no longer fits the model's context window."""


@runtime_checkable
class ChatModel(Protocol):
    """What every backend implements."""

    name: str

    def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, **sampling: Any) -> Reply:
        """Return the next assistant turn for ``messages`` with ``tools`` available."""
        ...


_call_counter = itertools.count(1)


def new_call_id() -> str:
    """A process-unique tool-call id in OpenAI's ``call_...`` style."""
    return f"call_{next(_call_counter):06d}"


def assistant_message(content: str, tool_calls: list[dict[str, Any]] | None = None, reasoning: str | None = None) -> dict[str, Any]:
    """Build an assistant message in the record schema (tool calls get ids and ``type: function``)."""
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning:
        msg["reasoning_content"] = reasoning
    if tool_calls:
        msg["tool_calls"] = [
            {
                "id": call.get("id") or new_call_id(),
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": call["function"]["arguments"]},
            }
            for call in tool_calls
        ]
    return msg
