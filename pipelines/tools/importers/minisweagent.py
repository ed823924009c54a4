"""mini-swe-agent trajectories (``<instance>.traj.json``): ``{"info", "messages", "trajectory_format"}``.

``messages`` is the chat the model saw, in OpenAI form. In the text-based mode (``trajectory_format``
``mini-swe-agent-1`` and the v2 text configs) an assistant message holds exactly one bash code block
(```` ```bash ```` or ```` ```mswea_bash_command ````; v2 also lists it in ``extra.actions``) and the next
``user`` message is the command's observation (``<returncode>N</returncode><output>...</output>``). Each
such action becomes a ``bash`` tool call (``{"command": ...}``) whose result is the observation in the
``bash`` tool's form (``OUTPUT\\n[exit code N]``; other observation texts, a timeout notice or the
head-and-tail form of a long output, as they are); the code block leaves the assistant text, the rest of
it (the model's THOUGHT) stays. An assistant message with no block, or several, was a format error in
mini-swe-agent: it stays plain text and the error notice that follows stays a user message. In the
tool-call mode (v2's default) assistant messages carry ``tool_calls`` and observations are ``role: tool``:
a ``bash`` call keeps its ``command``, other tools keep their names. v2's closing message (``role: exit``,
or a ``user`` message whose ``extra`` holds ``exit_status``) is metadata and is left out.

Meta: the model is ``info.config.model.model_name``; the cost ``info.model_stats.instance_cost``; the exit
status ``info.exit_status`` (``Submitted`` ends as ``finished``); a ``submission`` that is a diff is the
final diff. Verification: ``exit_status: Submitted`` only says the agent stopped, not that the work is
right, so it is not a verdict. A trajectory is verified only by an explicit flag: ``info.resolved`` (a
boolean), ``info.limi.passed`` (what ``limi export mini-swe-agent`` writes, with the task, episode key and
tools, which are read back too), or an evaluation report given with ``--resolved``; otherwise it is
unverified. The calls keep this project's tools (``bash``) as the record's ``tools``.
"""

from __future__ import annotations

import re
from typing import Any

from pipelines.agent.tools import TOOL_SCHEMAS
from pipelines.tools.importers.common import (OWN_TOOLS, Conversation, ResolvedReport, Source, arguments_of, decide,
                                              dig, make_record, tagged_shell_output, text_of, verdict_flag)

FORMAT = "mini-swe-agent"
_BLOCK = re.compile(r"```(?:bash|mswea_bash_command)[ \t]*\n(.*?)\n```", re.DOTALL)


def task_id_of(src: Source) -> str:
    name = src.path.name
    return name[: -len(".traj.json")] if name.endswith(".traj.json") else src.path.stem


def _actions(msg: dict[str, Any], content: str, src: Source, where: str,
             conv: Conversation) -> tuple[str, list[tuple[str, dict[str, Any], str | None]]]:
    """The assistant text left once the actions are taken out, and the actions as tool calls."""
    if msg.get("tool_calls"):
        calls = []
        for k, call in enumerate(msg["tool_calls"]):
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or not fn.get("name"):
                raise src.fail(f"{where}: tool_calls[{k}] has no function name")
            args = arguments_of(fn.get("arguments"), f"{src.where}: {where}: tool_calls[{k}]")
            if fn["name"] not in OWN_TOOLS:
                conv.count_unmapped(fn["name"])
            calls.append((fn["name"], args, call.get("id")))
        return content, calls
    listed = dig(msg, "extra", "actions")
    if isinstance(listed, list):
        commands = [a["command"] for a in listed if isinstance(a, dict) and isinstance(a.get("command"), str)]
    else:
        blocks = _BLOCK.findall(content)
        commands = blocks if len(blocks) == 1 else []  # none or several: mini-swe-agent's format error
    if not commands:
        return content, []
    # several listed actions run one after the other: one command line keeps the single observation theirs
    return _BLOCK.sub("", content).strip(), [("bash", {"command": "\n".join(commands)}, None)]


def convert(src: Source, report: ResolvedReport | None) -> dict[str, Any]:
    data = src.data
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise src.fail("not a mini-swe-agent trajectory: no 'messages' list")
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    conv = Conversation()
    pending: list[str] = []  # calls of the last assistant turn still waiting for their observation
    format_errors = 0
    for i, msg in enumerate(data["messages"]):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise src.fail(f"{where} is not an object")
        role, content = msg.get("role"), text_of(msg.get("content"))
        closing = isinstance(msg.get("extra"), dict) and "exit_status" in msg["extra"]
        if role == "exit" or (closing and not (pending and content)):
            continue
        if role == "system":
            conv.system(content)
        elif role == "assistant":
            text, calls = _actions(msg, content, src, where, conv)
            extra = {"reasoning_content": msg["reasoning_content"]} if msg.get("reasoning_content") else None
            pending = conv.assistant(text, calls, extra)
        elif role == "tool":
            call_id = msg.get("tool_call_id") or (pending[0] if pending else None)
            if call_id is None:
                raise src.fail(f"{where}: a tool result with no tool call before it")
            conv.result(call_id, tagged_shell_output(content))
            pending = [c for c in pending if c != call_id]
        elif role == "user":
            if pending:  # text mode: the observation of the action just taken
                conv.result(pending.pop(0), tagged_shell_output(content))
            else:
                # after an assistant turn without an action this is mini-swe-agent's format-error notice
                if conv.messages and conv.messages[-1]["role"] == "assistant":
                    format_errors += 1
                conv.user(content)
        else:
            raise src.fail(f"{where} has role {role!r}; mini-swe-agent writes system, user, assistant, tool and exit")
    limi = info.get("limi") if isinstance(info.get("limi"), dict) else {}
    own = (verdict_flag(info.get("resolved"), "info.resolved")
           or verdict_flag(limi.get("passed"), "info.limi.passed"))
    task_id = str(limi.get("task_id") or task_id_of(src))
    cost = dig(info, "model_stats", "instance_cost")
    exit_status = info.get("exit_status")
    base = {k: v for k, v in limi.items() if k not in ("passed", "tools")} or None
    tools = limi["tools"] if isinstance(limi.get("tools"), list) and limi["tools"] else TOOL_SCHEMAS
    return make_record(FORMAT, src, conv.done(), tools, task_id=task_id,
                       verification=decide(own, report, task_id), model=dig(info, "config", "model", "model_name"),
                       exit_status=exit_status if isinstance(exit_status, str) else None,
                       submission=info.get("submission"),
                       finished=isinstance(exit_status, str) and exit_status.lower() == "submitted",
                       tokens={"cost_usd": float(cost)} if isinstance(cost, (int, float)) and cost else None,
                       unmapped=conv.unmapped, format_errors=format_errors, base_meta=base,
                       extra={"trajectory_format": data["trajectory_format"]} if data.get("trajectory_format") else None)
