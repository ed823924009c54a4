"""The ``replay`` teacher: walks the agent's tools to apply a known solution, showing only what an agent
could know.

For a task with a reference solution (a PR's gold patch, a seed task's solution files) it explores,
reads each file it will change, writes the code with ``str_replace`` (``write_file`` for new files,
``bash rm`` for deleted ones), runs what the task makes public, writes whatever the solution still has
that running the programs did not produce, and finishes, through the same tools, recorder and verifier
as any model. It is a :class:`~pipelines.llm.base.ChatModel` whose turns are planned up front, except
the last edits, which are planned from the workspace as the programs left it.

What it runs (:func:`public_runs`): the commands the request names (in backticks), then each new or
changed top-level Python program the request does not already run (a file with statements beyond
definitions that reads no command-line arguments). Never a hidden check: the trajectories a model
trains on must not show an agent that knows expected values it could not have derived.
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import re
import shlex
from pathlib import Path
from typing import Any, Callable

from pipelines.llm.base import Reply, Usage, assistant_message

#: Unchanged lines around a ``str_replace`` edit: none, so ``old`` is only what changes (a pure insertion is
#: anchored on the line before it), widened a line at a time until it is unique in the file. Measured on the
#: easy tier: after SFT on trajectories with two context lines the embedded 135M model copied 5-7-line
#: snippets badly (old equal to new, unescaped quotes) on 7 of 12 tasks; one-line edits are what it can copy.
CONTEXT_LINES = 0
#: First words of a backticked span that make it a command the request names.
COMMAND_WORDS = ("python3", "python", "bash", "sh", "make", "node", "pytest")
_BACKTICKS = re.compile(r"`([^`\n]+)`")
#: What a program writes: files of these kinds that a solution adds are written after its programs ran.
OUTPUT_SUFFIXES = frozenset({".csv", ".json", ".jsonl", ".txt", ".md", ".tsv", ".log"})


def named_commands(query: str) -> list[str]:
    """Commands the request names in backticks (``python3 greet.py Ada``), in order, each once."""
    found = []
    for span in _BACKTICKS.findall(query):
        words = span.strip().split()
        if words and (words[0] in COMMAND_WORDS or words[0].startswith("./")) and span.strip() not in found:
            found.append(span.strip())
    return found


def is_program(source: str) -> bool:
    """A Python file that does something when run and needs no arguments: top-level statements beyond
    imports, definitions and assignments (or a ``__main__`` block), and no ``sys.argv``/``argparse``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    if "sys.argv" in source or "argparse" in source:
        return False
    quiet = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign,
             ast.AnnAssign)
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring
        if not isinstance(node, quiet):
            return True
    return False


def public_runs(query: str, before: dict[str, str], after: dict[str, str]) -> list[str]:
    """What the replay runs after writing the code: named commands, then the changed top-level programs
    that no named command already runs."""
    commands = named_commands(query)
    mentioned = " ".join(commands)
    for path in sorted(after):
        if (path.endswith(".py") and "/" not in path and after[path] != before.get(path)
                and path not in mentioned and is_program(after[path])):
            commands.append(f"python3 {shlex.quote(path)}")
    return commands


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
        if i1 == i2:  # a pure insertion: anchor it on the line before (the line after at the top of the file)
            if i1 > 0:
                i1, j1 = i1 - 1, j1 - 1
            else:
                i2, j2 = i2 + 1, j2 + 1
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


Step = tuple[str, list[dict[str, Any]]]


class ReplayTeacher:
    """Plays a plan: look around, read, write the code, run what is public, tidy up, finish.

    ``runs`` are the public commands (see :func:`public_runs`). With ``current`` (a function returning the
    workspace's files now), outputs a program should produce (new files with an output suffix) are left
    for after the runs, and whatever then still differs from the solution is edited into it (outputs the
    programs did not write alike, what trying a command changed: a bumped version file, a created store);
    without it the whole change is written before the runs. One instance per episode.
    """

    name = "replay"

    def __init__(self, before: dict[str, str], after: dict[str, str], runs: list[str] | None = None,
                 summary: str = "Applied the change and ran it.",
                 current: Callable[[], dict[str, str]] | None = None):
        self.runs = list(runs or [])
        held = ({p for p in after if p not in before and Path(p).suffix in OUTPUT_SUFFIXES}
                if self.runs and current is not None else set())
        edits = plan_edits(before, {p: text for p, text in after.items() if p not in held})
        touched = sorted({c["function"]["arguments"]["path"] for c in edits if "path" in c["function"]["arguments"]})
        steps: list[Step] = [
            ("Let me look at the workspace first.", [_call("bash", {"command": "ls -A && git status --short 2>/dev/null | head -20"})]),
        ]
        for path in touched:
            if path in before:
                steps.append((f"Reading {path} before changing it.", [_call("read_file", {"path": path})]))
        for call in edits:
            steps.append(("", [call]))
        for command in self.runs:
            steps.append((f"Running `{command}`.", [_call("bash", {"command": command})]))
        self.steps = steps
        self.after = after
        self.current = current
        self.summary = summary
        self.turn = 0
        self._rest: list[Step] | None = None

    def _remaining(self) -> list[Step]:
        """The steps after the runs, planned once from the workspace as the runs left it, then finish."""
        if self._rest is None:
            rest: list[Step] = []
            if self.current is not None and self.runs:
                rest = [("", [call]) for call in plan_edits(self.current(), self.after)]
            self._rest = rest + [("", [_call("finish", {"summary": self.summary})])]
        return self._rest

    def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, **sampling: Any) -> Reply:
        planned = len(self.steps)
        if self.turn < planned:
            text, calls = self.steps[self.turn]
        elif self.turn - planned < len(self._remaining()):
            text, calls = self._remaining()[self.turn - planned]
        else:  # after feedback the plan is spent: finish again
            text, calls = "The planned change is complete.", [_call("finish", {"summary": "No further changes."})]
        self.turn += 1
        size = len(json.dumps(calls)) // 4
        return Reply(assistant_message(text, calls), Usage(completion_tokens=size))


def limi_calls(calls: list[dict[str, Any]], workspace: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The default set's ``calls`` in the ``limi`` tool set's names and argument shapes (file paths made
    absolute in ``workspace``), and the ``finish`` summary when one of them finished (the limi set ends a
    turn with an answer, not a call)."""
    root = Path(os.path.realpath(workspace))
    out: list[dict[str, Any]] = []
    for call in calls:
        name, args = call["function"]["name"], call["function"]["arguments"]
        if name == "finish":
            return out, args.get("summary", "")
        if name == "bash":
            out.append(_call("run_shell_command", {"command": args["command"]}))
        elif name == "read_file":
            out.append(_call("read_file", {"absolute_path": str(root / args["path"])}))
        elif name == "write_file":
            out.append(_call("write_file", {"file_path": str(root / args["path"]), "content": args["content"]}))
        elif name == "str_replace":
            out.append(_call("replace", {"file_path": str(root / args["path"]), "old_string": args["old"],
                                         "new_string": args["new"]}))
        else:
            raise ValueError(f"the replay has no limi form for {name}")
    return out, None


class LimiReplay:
    """A :class:`ReplayTeacher` playing its plan with the ``limi`` tool set: the same steps, each call in
    SII CLI's shape, and ``finish`` turned into a closing answer without a tool call."""

    name = "replay"

    def __init__(self, teacher: ReplayTeacher, workspace: Path):
        self.teacher, self.workspace = teacher, workspace

    def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, **sampling: Any) -> Reply:
        reply = self.teacher.chat(messages, tools, **sampling)
        calls, summary = limi_calls(reply.tool_calls, self.workspace)
        text = summary if summary is not None else reply.content
        return Reply(assistant_message(text, calls), reply.usage)
