"""The tool-call text formats of local models, rendered and parsed in one place.

In the ``chatml`` and ``qwen3`` families (:mod:`pipelines.llm.families`) an assistant turn is optional
``<think>`` reasoning and text followed by zero or more blocks::

    <tool_call>
    {"name": "bash", "arguments": {"command": "ls"}}
    </tool_call>

(the convention of the Qwen2.5/Qwen3 and Hermes templates; ``pipelines/templates/chatml_tools.jinja``
renders it). ``glm45`` writes ``<tool_call>bash\n<arg_key>command</arg_key>\n<arg_value>ls</arg_value>\n
</tool_call>``; ``llama31`` a bare JSON object ``{"name": "bash", "parameters": {"command": "ls"}}`` per
line after the text. Parsing never raises: malformed calls come back as an error message the agent can
show to the model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pipelines.llm.families import FAMILIES

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


PARSERS = ("chatml", "qwen3", "glm45", "llama31")


def parse_assistant_text(text: str, family: str = "chatml", tools: list[dict[str, Any]] | None = None) -> ParsedTurn:
    """Split generated text of ``family``'s format into reasoning, content and tool calls (arguments as
    dicts). ``tools`` (the schemas offered) lets GLM-4.5 values of non-string parameters be read as JSON."""
    if family not in PARSERS:
        raise ValueError(f"unknown tool-call format {family!r}; known: {', '.join(PARSERS)}")
    for stop in FAMILIES[family].stops:
        text = text.replace(stop, "")
    if family == "glm45":
        return _parse_glm(text, tools)
    if family == "llama31":
        return _parse_llama(text.replace("<|python_tag|>", ""))
    return _parse_hermes(text)


def _split_reasoning(text: str) -> tuple[str | None, str]:
    m = THINK_RE.match(text)
    if not m:
        return None, text
    return m.group(1), text[m.end():]


def _parse_hermes(text: str) -> ParsedTurn:
    reasoning, text = _split_reasoning(text)
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


# ---------------------------------------------------------------- GLM-4.5
_GLM_PAIR = re.compile(r"\s*<arg_key>(.*?)</arg_key>\s*<arg_value>(.*?)</arg_value>", re.S)


def _parse_glm(text: str, tools: list[dict[str, Any]] | None) -> ParsedTurn:
    reasoning, text = _split_reasoning(text)
    types = _param_types(tools)
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
            return ParsedTurn(_join(pieces), calls, reasoning, error=f"a {OPEN} block is not closed with {CLOSE}")
        call, error = _glm_call(text[start + len(OPEN):end], types)
        if error:
            return ParsedTurn(_join(pieces), calls, reasoning, error=error)
        calls.append(call)
        pos = end + len(CLOSE)
    if CLOSE in _join(pieces):
        return ParsedTurn(_join(pieces), calls, reasoning, error=f"{CLOSE} without a matching {OPEN}")
    return ParsedTurn(_join(pieces), calls, reasoning)


def _glm_call(body: str, types: dict[str, dict[str, str]]) -> tuple[dict[str, Any] | None, str | None]:
    head, sep, rest = body.partition("<arg_key>")
    name = head.strip()
    if not name or "\n" in name or "<" in name:
        return None, ("a tool call must start with the function name: <tool_call>NAME\n<arg_key>KEY</arg_key>\n"
                      f"<arg_value>VALUE</arg_value>\n</tool_call>; got {body[:200]!r}")
    rest = sep + rest
    args: dict[str, Any] = {}
    pos = 0
    for m in _GLM_PAIR.finditer(rest):
        if m.start() != pos:
            break
        key, value = m.group(1).strip(), m.group(2)
        args[key] = _glm_value(value, types.get(name, {}).get(key))
        pos = m.end()
    if rest[pos:].strip():
        return None, (f"the arguments of {name!r} must be <arg_key>KEY</arg_key>\n<arg_value>VALUE</arg_value> "
                      f"pairs; cannot read {rest[pos:pos + 200].strip()!r}")
    return {"type": "function", "function": {"name": name, "arguments": args}}, None


def _glm_value(value: str, schema_type: str | None) -> Any:
    """A string parameter's value as written; any other value decoded as JSON where it is JSON."""
    if schema_type == "string":
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _param_types(tools: list[dict[str, Any]] | None) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for tool in tools or []:
        fn = tool.get("function", tool) if isinstance(tool, dict) else {}
        props = (fn.get("parameters") or {}).get("properties") or {} if isinstance(fn, dict) else {}
        if isinstance(fn, dict) and isinstance(fn.get("name"), str) and isinstance(props, dict):
            out[fn["name"]] = {k: v.get("type") for k, v in props.items() if isinstance(v, dict)}
    return out


# ---------------------------------------------------------------- Llama 3.1
_LLAMA_CALL = re.compile(r'(?:^|\n)[ \t]*(?=\{\s*"name"\s*:)')


def _parse_llama(text: str) -> ParsedTurn:
    m = _LLAMA_CALL.search(text)
    if not m:
        return ParsedTurn(text.strip(), [])
    content, rest = text[:m.start()].strip(), text[m.end():]
    calls: list[dict[str, Any]] = []
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(rest) and rest[pos] in " \t\r\n;":
            pos += 1
        if pos >= len(rest):
            break
        if rest[pos] != "{":
            return ParsedTurn(content, calls, error=f"text after a tool call: {rest[pos:pos + 200]!r}; "
                              'a tool call is a JSON object {"name": ..., "parameters": {...}} on its own line')
        try:
            obj, end = decoder.raw_decode(rest, pos)
        except json.JSONDecodeError as exc:
            return ParsedTurn(content, calls, error=f"the tool call is not valid JSON ({exc.msg} at character "
                              f"{exc.pos - pos}): {rest[pos:pos + 200]!r}")
        call, error = _llama_call(obj)
        if error:
            return ParsedTurn(content, calls, error=error)
        calls.append(call)
        pos = end
    return ParsedTurn(content, calls)


def _llama_call(obj: Any) -> tuple[dict[str, Any] | None, str | None]:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None, 'a tool call must be a JSON object like {"name": "...", "parameters": {...}}'
    args = obj.get("parameters", obj.get("arguments", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            return None, f"the parameters of {obj['name']!r} are a string that is not JSON"
    if not isinstance(args, dict):
        return None, f"the parameters of {obj['name']!r} must be a JSON object"
    return {"type": "function", "function": {"name": obj["name"], "arguments": args}}, None


# ---------------------------------------------------------------- per-family helpers for the backends
def has_markup(text: str, family: str) -> bool:
    """Whether text a server returned holds ``family``'s tool-call or reasoning markup."""
    if family == "llama31":
        return "<|python_tag|>" in text or bool(_LLAMA_CALL.search(text))
    return OPEN in text or CLOSE in text or bool(THINK_RE.match(text))


def call_prefix(family: str, name: str | None = None) -> str:
    """Text that starts a tool call in ``family``'s format (of function ``name`` when given, its
    arguments opened), forced at the start of a turn to honour ``tool_choice``."""
    if family == "glm45":
        return "\n<think></think>\n" + OPEN + (f"{name}\n" if name else "")
    if family == "llama31":
        key = "parameters"
    else:
        key = "arguments"
    head = f"{OPEN}\n" if family in ("chatml", "qwen3") else ""
    if name:
        return head + '{"name": ' + json.dumps(name) + f', "{key}": ' + "{"  # arguments are always an object
    return head + '{"name": "'


def close_string(family: str) -> str | None:
    """The text that ends one tool call in ``family``'s format (None where a call is a bare JSON object)."""
    return None if family == "llama31" else CLOSE
