"""The ``replay`` teacher: walks the agent's tools to apply a known solution.

For a task with a reference solution (a PR's gold patch, a seed task's solution files) it explores,
reads each file it will change, edits it with ``str_replace`` (``write_file`` for new files, ``bash rm``
for deleted ones), runs the task's checks and finishes, through the same tools, recorder and verifier
as any model. It is a :class:`~pipelines.llm.base.ChatModel` whose turns are planned up front.
"""

from __future__ import annotations

import difflib
import json
import shlex
from typing import Any

from pipelines.llm.base import Reply, Usage, assistant_message

CONTEXT_LINES = 2


def plan_edits(before: dict[str, str], after: dict[str, str]) -> list[dict[str, Any]]:
    """Tool calls that turn the ``before`` files into ``after`` ({path: text} snapshots)."""
    calls: list[dict[str, Any]] = []
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if old == new:
            continue
        if new is None:
            calls.append(_call("bash", {"command": f"rm -- {shlex.quote(path)}"}))
        elif old is None or not old.strip():
            calls.append(_call("write_file", {"path": path, "content": new}))
        else:
            edits = _str_replace_edits(old, new)
            if edits is None:  # no unique anchors: rewriting the file is the honest move
                calls.append(_call("write_file", {"path": path, "content": new}))
            else:
                calls.extend(_call("str_replace", {"path": path, "old": a, "new": b}) for a, b in edits)
    return calls


def _str_replace_edits(old: str, new: str) -> list[tuple[str, str]] | None:
    """Hunks as (old, new) snippets, each unique in the file at the moment it is applied."""
    a, b = old.splitlines(True), new.splitlines(True)
    groups = list(difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(CONTEXT_LINES))
    edits, current = [], old
    for group in groups:
        i1, i2 = group[0][1], group[-1][2]
        j1, j2 = group[0][3], group[-1][4]
        snippet_old, snippet_new = "".join(a[i1:i2]), "".join(b[j1:j2])
        # widen the context until the old snippet is unique in the current text
        while snippet_old and current.count(snippet_old) != 1 and (i1 > 0 or i2 < len(a)):
            i1, i2, j1, j2 = max(0, i1 - 1), min(len(a), i2 + 1), max(0, j1 - 1), min(len(b), j2 + 1)
            snippet_old, snippet_new = "".join(a[i1:i2]), "".join(b[j1:j2])
        if not snippet_old or current.count(snippet_old) != 1:
            return None
        edits.append((snippet_old, snippet_new))
        current = current.replace(snippet_old, snippet_new, 1)
    return edits if current == new else None


def _call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


class ReplayTeacher:
    """Plays a fixed plan: look around, read, edit, check, finish. One instance per episode."""

    name = "replay"

    def __init__(self, before: dict[str, str], after: dict[str, str], checks: list[str] | None = None,
                 summary: str = "Applied the change and ran the checks."):
        edits = plan_edits(before, after)
        touched = sorted({c["function"]["arguments"]["path"] for c in edits if "path" in c["function"]["arguments"]})
        steps: list[tuple[str, list[dict[str, Any]]]] = [
            ("Let me look at the workspace first.", [_call("bash", {"command": "ls -A && git status --short 2>/dev/null | head -20"})]),
        ]
        for path in touched:
            if path in before:
                steps.append((f"Reading {path} before changing it.", [_call("read_file", {"path": path})]))
        for call in edits:
            steps.append(("", [call]))
        for command in checks or []:
            steps.append(("Running the checks.", [_call("bash", {"command": command})]))
        steps.append(("", [_call("finish", {"summary": summary})]))
        self.steps = steps
        self.turn = 0

    def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, **sampling: Any) -> Reply:
        if self.turn >= len(self.steps):  # after feedback the plan is spent: finish again
            text, calls = "The planned change is complete.", [_call("finish", {"summary": "No further changes."})]
        else:
            text, calls = self.steps[self.turn]
        self.turn += 1
        size = len(json.dumps(calls)) // 4
        return Reply(assistant_message(text, calls), Usage(completion_tokens=size))
