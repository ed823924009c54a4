"""Chat-form datasets: the released LIMI/SII CLI rows (``limi``) and LLaMA-Factory's ShareGPT (``sharegpt``).

``limi``: JSONL rows (or a JSON list of them) of ``{"messages", "tools"?, "meta"?}`` with roles system,
user, assistant and tool, assistant ``tool_calls`` in OpenAI function form whose ``arguments`` are objects
or JSON strings (parsed here), tool results with ``tool_call_id``; ``tools`` a list of function schemas (or
its JSON string). This is the trajectory schema itself, so this project's own records (``limi export
jsonl``, ``data/sft/train.jsonl``) import too; their meta is kept, with ``source`` moved to
``meta.imported.original_source``. Calls without an id get ``call_<turn>_<k>``. Verification: a record's
own ``meta.passed`` (a boolean: this project's verifier verdict) or a ``--resolved`` report matched on its
task id; the public LIMI release has no meta, so its rows are unverified.

``sharegpt``: LLaMA-Factory's ShareGPT with tools, as ``limi export sharegpt`` writes it: a JSON list (or
JSONL) of ``{"conversations": [{"from", "value"}], "system"?, "tools"?}``. ``human`` is a user message,
``gpt`` an assistant one, ``function_call`` an assistant message with the call (``{"name", "arguments"}``)
or calls (a list of them), ``observation`` their results (several calls: a JSON list of texts, one each).
Calls get ``call_<turn>_<k>`` ids, as the agent loop names them, so this project's records export and
import back to the same messages, less what ShareGPT has no place for (text beside a tool call, results
no assistant turn answers; ``limi export`` counts both). ShareGPT has no verdict: rows are unverified
unless a ``--resolved`` report names their task id (``FILE-INDEX``).
"""

from __future__ import annotations

import json
from typing import Any

from pipelines.tools.importers.common import (Conversation, ResolvedReport, Source, arguments_of, decide,
                                              make_record, text_of, verdict_flag)

ROLES = ("system", "user", "assistant", "tool")


def tool_schemas(raw: Any, src: Source) -> list[dict[str, Any]]:
    """A row's tools as OpenAI function schemas (``{"type": "function", "function": {...}}``)."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise src.fail(f"tools is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise src.fail("tools must be a list of function schemas")
    return [t if "function" in t else {"type": "function", "function": t} for t in raw]


def _task_id(src: Source, meta: dict[str, Any], row: dict[str, Any]) -> str:
    given = meta.get("task_id") or row.get("id")
    return str(given) if given else f"{src.path.stem}-{src.line or src.index}"


def convert_limi(src: Source, report: ResolvedReport | None) -> dict[str, Any]:
    row = src.data
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
        raise src.fail("not a trajectory row: no 'messages' list")
    messages: list[dict[str, Any]] = []
    for i, msg in enumerate(row["messages"]):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise src.fail(f"{where} is not an object")
        if msg.get("role") not in ROLES:
            raise src.fail(f"{where} has role {msg.get('role')!r}; the format has {', '.join(ROLES)}")
        out = dict(msg)
        if isinstance(out.get("content"), list):
            out["content"] = text_of(out["content"])
        if out.get("tool_calls"):
            turn = sum(1 for m in messages if m["role"] == "assistant")
            calls = []
            for k, call in enumerate(out["tool_calls"]):
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not fn.get("name"):
                    raise src.fail(f"{where}: tool_calls[{k}] has no function name")
                args = arguments_of(fn.get("arguments"), f"{src.where}: {where}: tool_calls[{k}]")
                calls.append({**call, "id": call.get("id") or f"call_{turn}_{k}", "type": "function",
                              "function": {**fn, "arguments": args}})
            out["tool_calls"] = calls
        messages.append(out)
    meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
    task_id = _task_id(src, meta, row)
    own = verdict_flag(meta.get("passed"), "meta.passed") if "passed" in meta else None
    return make_record("limi", src, messages, tool_schemas(row.get("tools"), src), task_id=task_id,
                       verification=decide(own, report, task_id), model=meta.get("teacher") or None,
                       base_meta=meta or None)


def _calls(value: str, src: Source, where: str) -> list[tuple[str, dict[str, Any], None]]:
    try:
        parsed = json.loads(value)
    except (json.JSONDecodeError, TypeError):
        raise src.fail(f"{where}: a function_call value must be JSON ({{\"name\", \"arguments\"}} or a list of them)") from None
    out = []
    for call in parsed if isinstance(parsed, list) else [parsed]:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise src.fail(f"{where}: a function call needs a 'name'")
        out.append((call["name"], arguments_of(call.get("arguments"), f"{src.where}: {where}"), None))
    return out


def convert_sharegpt(src: Source, report: ResolvedReport | None) -> dict[str, Any]:
    row = src.data
    if not isinstance(row, dict) or not isinstance(row.get("conversations"), list):
        raise src.fail("not a ShareGPT row: no 'conversations' list")
    conv = Conversation()
    if row.get("system"):
        conv.system(text_of(row["system"]))
    pending: list[str] = []
    for i, turn in enumerate(row["conversations"]):
        where = f"conversations[{i}]"
        if not isinstance(turn, dict):
            raise src.fail(f"{where} is not an object")
        kind, value = turn.get("from"), text_of(turn.get("value"))
        if kind == "human":
            conv.user(value)
        elif kind == "gpt":
            conv.assistant(value)
        elif kind == "system":
            conv.system(value)
        elif kind == "function_call":
            pending = conv.assistant("", _calls(value, src, where))
        elif kind == "observation":
            if not pending:
                raise src.fail(f"{where}: an observation with no function_call before it")
            results = [value]
            if len(pending) > 1:
                try:
                    results = json.loads(value)
                except json.JSONDecodeError:
                    results = None
                if not isinstance(results, list) or len(results) != len(pending):
                    raise src.fail(f"{where}: {len(pending)} calls need a JSON list of {len(pending)} results")
            for call_id, text in zip(pending, results):
                conv.result(call_id, text_of(text))
            pending = []
        else:
            raise src.fail(f"{where} is from {kind!r}; ShareGPT has human, gpt, function_call, observation")
    task_id = f"{src.path.stem}-{src.line or src.index}"
    return make_record("sharegpt", src, conv.done(), tool_schemas(row.get("tools"), src), task_id=task_id,
                       verification=decide(None, report, task_id))
