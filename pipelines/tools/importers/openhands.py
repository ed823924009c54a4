"""OpenHands event streams: a JSON list of events (a saved trajectory), or an evaluation output row
(``{"instance_id", "history": [events], "metadata", "test_result", ...}``, one per line of its JSONL;
older rows hold ``history`` as ``[action, observation]`` pairs).

Each event is an action (``action``, ``args``, ``source`` agent|user|environment) or an observation
(``observation``, ``content``, ``extras``, ``cause``: the id of the action it answers); an action the model
chose carries ``tool_call_metadata`` (``tool_call_id``, ``function_name``, ``model_response``). They become:

- ``system`` action: the system message; ``message`` from the user: a user message, from the agent: an
  assistant message; ``think``: assistant text put before the next assistant turn (its "thought logged"
  observation is left out).
- ``run``: a ``bash`` call (``command``); its ``run`` observation is the result in the ``bash`` tool's form,
  the output then ``[exit code N]`` (``extras.metadata.exit_code``, or ``extras.exit_code`` in older
  streams).
- ``edit`` with ``command`` ``create``: ``write_file``; ``str_replace``: ``str_replace``; ``view``: ``read_file``
  (``view_range`` as ``start_line``/``end_line``); ``write``: ``write_file``; ``read``: ``read_file``.
- ``finish``: ``finish``, its summary the ``final_thought`` (else ``outputs.content``, else empty).
- other agent actions with ``tool_call_metadata`` (``run_ipython``, ``browse``, an ``edit`` with no such
  command, ...): a call of the tool the model named, with the arguments the model gave (from the
  ``model_response``, else the event's ``args``), counted in ``meta.imported.unmapped_actions``.
- anything else (agent state changes, recalls, condensations, null events) is left out.

``args.thought`` is the assistant text of the turn. Several actions of one model response (the same
``model_response.id``) are one assistant message with several tool calls, their results after it in order.

Meta: the model is ``metadata.llm_config.model`` (else the first ``model_response.model``); cost and tokens
are the last ``llm_metrics``' accumulated figures; the exit status is the last ``agent_state_changed``
state; a ``finish`` action ends as ``finished``; ``test_result.git_patch`` is the final diff. Verification:
the agent's own ``task_completed`` claim is not a verdict. An evaluation row is verified by
``report.resolved`` or ``test_result.report.resolved`` (booleans, as the SWE-bench evaluation of OpenHands
writes them), or by a report given with ``--resolved`` matched on ``instance_id``; otherwise unverified.
"""

from __future__ import annotations

import json
from typing import Any

from pipelines.agent.tools import TOOL_SCHEMAS
from pipelines.tools.importers.common import (Conversation, ResolvedReport, Source, arguments_of, decide, dig,
                                              make_record, shell_output, text_of, verdict_flag)

FORMAT = "openhands"
# Event bookkeeping, not the model's arguments.
_NOT_ARGUMENTS = frozenset({"thought", "confirmation_state", "security_risk", "hidden", "blocking", "is_input",
                            "impl_source", "wait_for_response", "image_urls", "file_urls", "include_extra"})


def is_event(item: Any) -> bool:
    return isinstance(item, dict) and ("action" in item or "observation" in item)


def _read_args(path: str, view_range: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"path": path}
    if isinstance(view_range, list) and len(view_range) == 2 and all(isinstance(v, int) for v in view_range):
        if view_range[0] >= 1:
            args["start_line"] = view_range[0]
        if view_range[1] >= 1:
            args["end_line"] = view_range[1]
    return args


def _model_arguments(metadata: dict[str, Any], where: str) -> dict[str, Any] | None:
    """The arguments the model gave for this call, from the model response stored with the event."""
    call_id = metadata.get("tool_call_id")
    for choice in dig(metadata, "model_response", "choices") or []:
        for call in dig(choice, "message", "tool_calls") or []:
            if isinstance(call, dict) and call.get("id") == call_id:
                return arguments_of(dig(call, "function", "arguments"), where)
    return None


def map_action(kind: str, args: dict[str, Any], metadata: dict[str, Any], where: str,
               conv: Conversation) -> tuple[str, dict[str, Any]] | None:
    """An agent action as a tool call here (see the module docstring); None for bookkeeping events."""
    path = args.get("path") if isinstance(args.get("path"), str) else None
    if kind == "run" and isinstance(args.get("command"), str):
        return "bash", {"command": args["command"]}
    if kind == "edit" and path:
        command = args.get("command")
        if command == "create" and isinstance(args.get("file_text"), str):
            return "write_file", {"path": path, "content": args["file_text"]}
        if command == "str_replace" and isinstance(args.get("old_str"), str):
            new = args.get("new_str")
            return "str_replace", {"path": path, "old": args["old_str"], "new": new if isinstance(new, str) else ""}
        if command == "view":
            return "read_file", _read_args(path, args.get("view_range"))
    if kind == "write" and path and isinstance(args.get("content"), str):
        return "write_file", {"path": path, "content": args["content"]}
    if kind == "read" and path:
        return "read_file", _read_args(path, args.get("view_range"))
    if kind == "finish":
        summary = args.get("final_thought") or dig(args, "outputs", "content") or ""
        return "finish", {"summary": summary if isinstance(summary, str) else json.dumps(summary)}
    if not metadata:
        return None
    name = metadata.get("function_name") or kind
    given = _model_arguments(metadata, where)
    conv.count_unmapped(name)
    return name, given if given is not None else {k: v for k, v in args.items()
                                                  if k not in _NOT_ARGUMENTS and v is not None}


def _open_turn(conv: Conversation) -> bool:
    """Whether the last message other than tool results is an assistant message (calls may join it)."""
    for message in reversed(conv.messages):
        if message["role"] != "tool":
            return message["role"] == "assistant"
    return False


def convert(src: Source, report: ResolvedReport | None) -> dict[str, Any]:
    data = src.data
    row = data if isinstance(data, dict) else {}
    events = data.get("history") if isinstance(data, dict) else data
    if not isinstance(events, list):
        raise src.fail("not an OpenHands event stream: expected a list of events or an object with 'history'")
    # older evaluation outputs keep history as [action, observation] pairs
    events = [e for item in events for e in (item if isinstance(item, list) else [item])]
    conv = Conversation()
    call_of: dict[Any, str] = {}  # action event id -> tool call id
    pending: list[str] = []
    as_text: set[Any] = set()  # actions rendered as text: their observations are left out
    response, state, metrics, model, finished = None, None, None, None, False
    for i, event in enumerate(events):
        where = f"{src.where}: event {i}"
        if not is_event(event):
            raise src.fail(f"event {i} has neither 'action' nor 'observation'")
        if isinstance(event.get("llm_metrics"), dict):
            metrics = event["llm_metrics"]
        if "observation" in event:
            kind = event["observation"]
            if kind == "agent_state_changed":
                state = dig(event, "extras", "agent_state") or state
            cause = event.get("cause")
            if cause in as_text:
                continue
            call_id = call_of.get(cause) if cause is not None else None
            if call_id is None:
                call_id = dig(event, "tool_call_metadata", "tool_call_id")
            if call_id not in pending:
                continue  # answers nothing that became a call here (a recall, a state change)
            content = text_of(event.get("content"))
            if kind == "run":
                code = dig(event, "extras", "metadata", "exit_code")
                code = dig(event, "extras", "exit_code") if code is None else code
                content = shell_output(content, code if isinstance(code, int) and code >= 0 else None)
            conv.result(call_id, content)
            pending.remove(call_id)
            continue
        kind, source = event["action"], event.get("source")
        args = event.get("args") if isinstance(event.get("args"), dict) else {}
        metadata = event.get("tool_call_metadata") if isinstance(event.get("tool_call_metadata"), dict) else {}
        model = model or dig(metadata, "model_response", "model")
        if kind == "system":
            conv.system(text_of(args.get("content")))
        elif kind == "message" and source == "user":
            conv.user(text_of(args.get("content")))
            response = None
        elif kind == "message" and source == "agent":
            conv.assistant(text_of(args.get("content")))
            response = None
        elif kind == "think" and source == "agent":
            conv.note(text_of(args.get("thought")))
            as_text.add(event.get("id"))
        elif source == "agent":
            mapped = map_action(kind, args, metadata, where, conv)
            if mapped is None:
                continue
            name, call_args = mapped
            finished = finished or kind == "finish"
            this_response = dig(metadata, "model_response", "id")
            if this_response is not None and this_response == response and _open_turn(conv):
                call_id = conv.add_call(name, call_args, metadata.get("tool_call_id"))
            else:
                [call_id] = conv.assistant(text_of(args.get("thought")), [(name, call_args, metadata.get("tool_call_id"))])
            response = this_response
            if event.get("id") is not None:
                call_of[event["id"]] = call_id
            pending.append(call_id)
    own = (verdict_flag(dig(row, "report", "resolved"), "report.resolved")
           or verdict_flag(dig(row, "test_result", "report", "resolved"), "test_result.report.resolved"))
    task_id = str(row.get("instance_id") or (src.path.stem if src.single else f"{src.path.stem}-{src.index}"))
    usage = dig(metrics, "accumulated_token_usage") or {}
    tokens = {k: v for k, v in (("prompt", usage.get("prompt_tokens")), ("completion", usage.get("completion_tokens")),
                                ("cached", usage.get("cache_read_tokens")),
                                ("cost_usd", dig(metrics, "accumulated_cost"))) if isinstance(v, (int, float)) and v}
    return make_record(FORMAT, src, conv.done(), TOOL_SCHEMAS, task_id=task_id,
                       verification=decide(own, report, task_id),
                       model=dig(row, "metadata", "llm_config", "model") or model,
                       exit_status=state if isinstance(state, str) else None,
                       submission=dig(row, "test_result", "git_patch"), finished=finished,
                       tokens=tokens or None, unmapped=conv.unmapped,
                       extra={"instance_id": row["instance_id"]} if row.get("instance_id") else None)
