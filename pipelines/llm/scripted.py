"""``scripted`` backend for tests and demos: replays prepared assistant turns in order.

A turn is either an assistant message dict (tool-call arguments as dicts) or raw text, which is
parsed exactly like a local model's output (so format errors can be scripted too). Every request is
kept in ``requests`` so a test can check what the model was shown.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Union

from pipelines.core.errors import ModelError
from pipelines.llm.base import Reply, Usage, assistant_message
from pipelines.llm.toolcalls import parse_assistant_text

Turn = Union[str, dict[str, Any], Callable[[list[dict[str, Any]]], Union[str, dict[str, Any]]]]


class ScriptedModel:
    """Answers from a list of turns; a callable turn sees the messages and returns a turn."""

    def __init__(self, turns: Iterable[Turn], *, name: str = "scripted"):
        self.name = name
        self.turns = list(turns)
        self.requests: list[dict[str, Any]] = []

    @classmethod
    def from_file(cls, path: str | Path, *, name: str = "scripted") -> "ScriptedModel":
        """One turn per JSON line: a string (raw text) or an assistant message object."""
        path = Path(path)
        if not path.exists():
            raise ModelError(f"{path}: script file for the scripted model not found")
        turns = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    turns.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ModelError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        return cls(turns, name=name)

    def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, **sampling: Any) -> Reply:
        self.requests.append({"messages": [dict(m) for m in messages], "tools": tools, "sampling": sampling})
        if not self.turns:
            raise ModelError(f"scripted model {self.name!r} ran out of turns after {len(self.requests) - 1}")
        turn = self.turns.pop(0)
        if callable(turn):
            turn = turn(messages)
        usage = Usage(prompt_tokens=sum(len(str(m.get("content") or "")) for m in messages) // 4)
        if isinstance(turn, str):
            parsed = parse_assistant_text(turn)
            usage.completion_tokens = len(turn) // 4
            return Reply(assistant_message(parsed.content, parsed.tool_calls, parsed.reasoning), usage,
                         format_error=parsed.error, raw=turn)
        message = assistant_message(turn.get("content") or "", turn.get("tool_calls"), turn.get("reasoning_content"))
        usage.completion_tokens = len(json.dumps(turn)) // 4
        return Reply(message, usage)
