"""Tool sets: which tools the agent is given, with the system prompt and format hint that go with them.

    ts = tool_set("limi")
    run_episode(query, model, Toolbox(ws, sandbox, tool_set=ts.name), ..., tools=ts.schemas,
                system_prompt=ts.system_prompt, format_hint=ts.format_hint)

- ``default``: this project's five tools (``bash``, ``read_file``, ``write_file``, ``str_replace``,
  ``finish``); the episode's turn ends with ``finish`` or an answer without a tool call.
- ``limi``: SII CLI's names and argument shapes (the tools LIMI's released trajectories use) for what
  makes sense offline: ``run_shell_command``, ``read_file``, ``write_file``, ``replace``, ``glob``,
  ``search_file_content``. Source followed: Gemini CLI's core tool schemas of mid-2025 (SII CLI is
  built on Gemini CLI), as its ``docs/tools`` pages and published copies of its function declarations
  give them; not a scan of LIMI's released records, so a record whose tools list differs shows it there.
  Not kept: ``glob``'s ``case_sensitive``/``respect_git_ignore`` (matching is case-sensitive and ``.git``
  is skipped), and Gemini's mtime ordering of ``glob`` (sorted by path here, so reruns read the same).
  SII CLI, like the Gemini CLI it comes from, has no finish tool: the turn ends when the model answers
  without a tool call, and so it does here (a ``finish`` tool would be one the trained model never saw,
  and LIMI's trajectories end with a plain assistant answer). Metrics that count ``finish`` calls read 0
  for this set.

Both sets run on the same confined operations (:class:`pipelines.agent.tools.Toolbox`): commands in the
sandbox, file tools inside the workspace only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.agent.loop import FORMAT_HINT, LIMI_FORMAT_HINT, LIMI_SYSTEM_PROMPT, SYSTEM_PROMPT
from pipelines.agent.tools import DEFAULT_TOOL_SET, TOOL_SETS

TOOL_SET_NAMES = tuple(TOOL_SETS)


@dataclass(frozen=True)
class ToolSet:
    name: str
    schemas: list[dict[str, Any]]
    system_prompt: str
    format_hint: str

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_TOOL_SET


_PROMPTS = {"default": (SYSTEM_PROMPT, FORMAT_HINT), "limi": (LIMI_SYSTEM_PROMPT, LIMI_FORMAT_HINT)}


def tool_set(name: str | None) -> ToolSet:
    """The tool set called ``name`` (None: the default set); ValueError for an unknown name."""
    name = name or DEFAULT_TOOL_SET
    if name not in TOOL_SETS:
        raise ValueError(f"unknown tool set {name!r}; known: {', '.join(TOOL_SETS)}")
    prompt, hint = _PROMPTS[name]
    return ToolSet(name, TOOL_SETS[name], prompt, hint)
