"""SWE-agent trajectories (``<instance>.traj``): ``{"trajectory", "history", "info", "replay_config"}``.

The conversation is rebuilt from the steps, not from ``history`` (whose observations are wrapped in the
run's templates and may be cut by its history processors): the system prompt and the task are the first
``system`` and the first ``user`` message of ``history`` that are not part of a demonstration
(``is_demo``; ``trajectory[0].query`` when there is no history), then each step of ``trajectory`` is an
assistant message (its ``thought``) with the step's ``action`` as one tool call, and the ``observation``
as that call's result.

SWE-agent runs every action in its shell session, where its own tools are installed as commands, so an
action is a ``bash`` call with the action as its ``command``, except those with an exact equivalent here:
``str_replace_editor create`` is ``write_file`` and ``str_replace_editor str_replace`` is ``str_replace``
(from the step's ``tool_calls`` arguments when it has them, else parsed from the action's command line),
and ``submit`` is ``finish`` (with an empty summary; its observation, usually the diff, is its result).
Actions of SWE-agent's other tools (``open``, ``edit``, ``str_replace_editor view`` ...) stay ``bash``
commands, which this project's sandbox does not have, and are counted in ``meta.imported.unmapped_actions``.

Meta: the model is ``replay_config``'s ``agent.model.name``; tokens and cost come from
``info.model_stats`` (``tokens_sent``, ``tokens_received``, ``instance_cost``); ``info.exit_status``
``submitted`` ends as ``finished``; a ``submission`` that is a diff is the final diff. Verification: an
exit status of ``submitted`` (with or without ``(exit_cost)`` and the like) means the agent handed in a
patch, not that it resolves the issue, so it is not a verdict. Only ``info.resolved`` (a boolean) or an
evaluation report given with ``--resolved`` (SWE-bench's ``resolved_ids``) verifies a trajectory;
otherwise it is unverified. The task id is the file name without ``.traj`` (SWE-agent names it after the
instance).
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from pipelines.agent.tools import TOOL_SCHEMAS
from pipelines.tools.importers.common import (Conversation, ResolvedReport, Source, arguments_of, decide, dig,
                                              make_record, text_of, verdict_flag)

FORMAT = "swe-agent"
# SWE-agent's own tools (its tool bundles), installed as commands in its shell; not commands here.
SWE_AGENT_TOOLS = frozenset({
    "open", "goto", "scroll_up", "scroll_down", "create", "edit", "insert", "search_dir", "search_file",
    "find_file", "filemap", "str_replace_editor", "exit_forfeit", "submit", "review_on_submit"})


def _editor(command: str | None, args: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """A ``str_replace_editor`` call with an exact equivalent here, else None."""
    path = args.get("path")
    if not isinstance(path, str) or not path:
        return None
    if command == "create" and isinstance(args.get("file_text"), str):
        return "write_file", {"path": path, "content": args["file_text"]}
    if command == "str_replace" and isinstance(args.get("old_str"), str):
        new = args.get("new_str")
        return "str_replace", {"path": path, "old": args["old_str"], "new": new if isinstance(new, str) else ""}
    return None


def _parsed_editor(action: str) -> tuple[str, dict[str, Any]] | None:
    """``str_replace_editor SUB PATH --flag value ...`` read back from the command line SWE-agent ran."""
    try:
        words = shlex.split(action)
    except ValueError:  # an unbalanced quote: leave it as the command it was
        return None
    if len(words) < 3 or words[0] != "str_replace_editor":
        return None
    args: dict[str, Any] = {"path": words[2]}
    rest = words[3:]
    for flag, value in zip(rest[0::2], rest[1::2]):
        if flag.startswith("--"):
            args[flag[2:]] = value
    return _editor(words[1], args)


def map_action(action: str, tool_call: dict[str, Any] | None, where: str,
               conv: Conversation) -> tuple[str, dict[str, Any]]:
    """One step's action as a call of this project's tools (see the module docstring)."""
    name, args = None, {}
    if tool_call is not None:
        fn = tool_call.get("function") or {}
        name = fn.get("name")
        args = arguments_of(fn.get("arguments"), where)
    first = action.split(maxsplit=1)[0] if action.strip() else ""
    if name == "submit" or (name is None and first == "submit"):
        return "finish", {"summary": ""}
    if name == "bash" and isinstance(args.get("command"), str):
        return "bash", {"command": args["command"]}
    mapped = _editor(args.get("command"), args) if name == "str_replace_editor" else None
    if mapped is None and name is None:
        mapped = _parsed_editor(action)
    if mapped is not None:
        return mapped
    tool = name if name and name != "bash" else first
    if tool in SWE_AGENT_TOOLS:
        sub = args.get("command") if name == "str_replace_editor" else (action.split()[1:2] or [""])[0]
        conv.count_unmapped(f"{tool} {sub}".strip() if tool == "str_replace_editor" else tool)
    return "bash", {"command": action}


def _model(data: dict[str, Any]) -> str | None:
    config = data.get("replay_config")
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except json.JSONDecodeError:
            return None
    name = dig(config, "agent", "model", "name")
    return name if isinstance(name, str) else None


def convert(src: Source, report: ResolvedReport | None) -> dict[str, Any]:
    data = src.data
    if not isinstance(data, dict) or not isinstance(data.get("trajectory"), list):
        raise src.fail("not a SWE-agent trajectory: no 'trajectory' list")
    steps = data["trajectory"]
    history = data.get("history")
    if not isinstance(history, list) or not history:
        history = (steps[0].get("query") if steps and isinstance(steps[0], dict) else None) or []
    shown = [h for h in history if isinstance(h, dict) and not h.get("is_demo")]
    system = next((text_of(h.get("content")) for h in shown if h.get("role") == "system"), None)
    request = next((text_of(h.get("content")) for h in shown if h.get("role") == "user"), None)
    if request is None:
        raise src.fail("no task: 'history' has no user message outside the demonstrations")
    conv = Conversation()
    if system is not None:
        conv.system(system)
    conv.user(request)
    for i, step in enumerate(steps):
        where = f"trajectory[{i}]"
        if not isinstance(step, dict):
            raise src.fail(f"{where} is not an object")
        # the thought is the response less its action block: what is left around it is whitespace
        thought = text_of(step.get("thought") if step.get("thought") is not None else step.get("response")).strip()
        action = step.get("action") if isinstance(step.get("action"), str) else ""
        observation = text_of(step.get("observation"))
        calls = step.get("tool_calls") if isinstance(step.get("tool_calls"), list) else []
        tool_call = calls[0] if calls and isinstance(calls[0], dict) else None  # SWE-agent takes one per step
        if not action.strip() and tool_call is None:
            conv.assistant(thought)
            if observation.strip():
                conv.user(observation)
            continue
        name, args = map_action(action, tool_call, f"{src.where}: {where}", conv)
        ids = dig(step, "tool_call_ids")
        source_id = (tool_call or {}).get("id") or (ids[0] if isinstance(ids, list) and ids else None)
        [call_id] = conv.assistant(thought, [(name, args, source_id)])
        conv.result(call_id, observation)
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    stats = info.get("model_stats") if isinstance(info.get("model_stats"), dict) else {}
    tokens = {k: v for k, v in (("prompt", stats.get("tokens_sent")), ("completion", stats.get("tokens_received")),
                                ("cost_usd", stats.get("instance_cost"))) if isinstance(v, (int, float)) and v}
    exit_status = info.get("exit_status") if isinstance(info.get("exit_status"), str) else None
    task_id = src.path.name[: -len(".traj")] if src.path.name.endswith(".traj") else src.path.stem
    return make_record(FORMAT, src, conv.done(), TOOL_SCHEMAS, task_id=task_id,
                       verification=decide(verdict_flag(info.get("resolved"), "info.resolved"), report, task_id),
                       model=_model(data), exit_status=exit_status, submission=info.get("submission"),
                       finished=exit_status == "submitted", tokens=tokens or None, unmapped=conv.unmapped)
