"""The tool-call text format of local models, rendered and parsed in one place.

An assistant turn is optional text followed by zero or more blocks::

    <tool_call>
    {"name": "bash", "arguments": {"command": "ls"}}
    </tool_call>

(the convention of the Qwen2.5 and Hermes templates; ``pipelines/templates/chatml_tools.jinja``
renders it). Parsing never raises: malformed calls come back as an error message the agent can show
to the model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

OPEN, CLOSE = "<tool_call>", "</tool_call>"
THINK_RE = re.compile(r"^\s*<think>\n?(.*?)\n?</think>\n?", re.S)
END_OF_TURN = "<|im_end|>"


@dataclass
class ParsedTurn:
    content: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    reasoning: str | None = None
    error: str | None = None


def render_tool_call(name: str, arguments: dict[str, Any] | str) -> str:
    """The exact text the template produces for one call."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return f'{OPEN}\n{{"name": {json.dumps(name, ensure_ascii=False)}, "arguments": {args}}}\n{CLOSE}'


def parse_assistant_text(text: str) -> ParsedTurn:
    """Split generated text into reasoning, content and tool calls (arguments as dicts)."""
    text = text.replace(END_OF_TURN, "")
    reasoning = None
    m = THINK_RE.match(text)
    if m:
        reasoning, text = m.group(1), text[m.end():]
    calls: list[dict[str, Any]] = []
    pieces: list[str] = []
    pos = 0
    while True:
        start = text.find(OPEN, pos)
        if start < 0:
            pieces.append(text[pos:])
            break
        pieces.append(text[pos:start])
        end = text.find(CLOSE, start)
        if end < 0:
            return ParsedTurn(_join(pieces), calls, reasoning,
                              error=f"a {OPEN} block is not closed with {CLOSE}")
        body = text[start + len(OPEN):end].strip()
        call, error = _parse_call_body(body)
        if error:
            return ParsedTurn(_join(pieces), calls, reasoning, error=error)
        calls.append(call)
        pos = end + len(CLOSE)
    if CLOSE in _join(pieces):
        return ParsedTurn(_join(pieces), calls, reasoning, error=f"{CLOSE} without a matching {OPEN}")
    return ParsedTurn(_join(pieces), calls, reasoning)


def _join(pieces: list[str]) -> str:
    return "\n".join(p.strip() for p in pieces if p.strip())


def _parse_call_body(body: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as exc:
        return None, f"the tool call is not valid JSON ({exc.msg} at character {exc.pos}): {body[:200]!r}"
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None, 'a tool call must be a JSON object like {"name": "...", "arguments": {...}}'
    args = obj.get("arguments", {})
    if isinstance(args, str):  # some models double-encode the arguments
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            return None, f"the arguments of {obj['name']!r} are a string that is not JSON"
    if not isinstance(args, dict):
        return None, f"the arguments of {obj['name']!r} must be a JSON object"
    return {"type": "function", "function": {"name": obj["name"], "arguments": args}}, None


_TURN_RE = re.compile(r"<\|im_start\|>(\w+)\n(.*?)<\|im_end\|>\n?", re.S)
_TOOLS_HEADER = "\n\n# Tools\n\n"


def parse_chatml(text: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Read a conversation rendered by the project's template back into (messages, tools).

    Tool-call ids are not rendered, so they come back as ``call_<turn>_<k>`` and tool results are
    linked to the calls of the preceding assistant turn in order.
    """
    messages: list[dict[str, Any]] = []
    tools: list[dict[str, Any]] = []
    pending: list[str] = []
    for turn, m in enumerate(_TURN_RE.finditer(text)):
        role, body = m.group(1), m.group(2)
        if role == "system":
            if _TOOLS_HEADER in body:
                body, tool_part = body.split(_TOOLS_HEADER, 1)
                inner = tool_part.split("\n<tools>", 1)[1].split("\n</tools>", 1)[0]
                tools = [json.loads(line) for line in inner.strip().splitlines() if line.strip()]
            messages.append({"role": "system", "content": body})
        elif role == "assistant":
            parsed = parse_assistant_text(body)
            msg: dict[str, Any] = {"role": "assistant", "content": parsed.content}
            if parsed.reasoning:
                msg["reasoning_content"] = parsed.reasoning
            if parsed.tool_calls:
                for k, call in enumerate(parsed.tool_calls):
                    call["id"] = f"call_{turn}_{k}"
                msg["tool_calls"] = parsed.tool_calls
                pending = [c["id"] for c in parsed.tool_calls]
            messages.append(msg)
        elif role == "tool":
            messages.append({"role": "tool", "tool_call_id": pending.pop(0) if pending else None, "content": body})
        else:
            messages.append({"role": role, "content": body})
    return messages, tools
