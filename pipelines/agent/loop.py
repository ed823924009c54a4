"""The agent loop: one linear history, tools in a sandbox, rounds of user feedback.

    result = run_episode(query_text, model, toolbox, verifier, user, limits)

A turn asks the model for the next assistant message; its tool calls run through the toolbox and
their results are appended as ``tool`` messages. When the agent calls ``finish`` (or answers in plain
text), the verifier runs; if it fails and rounds remain, the user answers and the episode goes on.
Termination reasons keep infrastructure errors (``infra_error``) apart from the agent's failures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.agent.users import EpisodeRejected, User
from pipelines.agent.verifiers import Verifier, VerifierResult
from pipelines.core.errors import ModelError
from pipelines.llm.base import ChatModel, ContextLengthError, EndpointError, Usage

TERMINATIONS = ("finished", "step_limit", "token_limit", "time_limit", "format_errors", "infra_error")

SYSTEM_PROMPT = """You are an autonomous software and research agent working in a sandboxed workspace (the current directory).
Use the tools to inspect files, run commands, and edit files. Work step by step: look before you change,
run the checks you can, and call `finish` with a short summary when the task is complete.
Call tools with a JSON object inside <tool_call></tool_call> tags."""


@dataclass
class Limits:
    """Per-episode bounds. ``max_tokens`` counts prompt + completion tokens over all turns."""

    max_steps: int = 30
    max_tokens: int = 200_000
    max_seconds: float = 900.0
    max_format_errors: int = 3
    max_rounds: int = 3


@dataclass
class EpisodeResult:
    messages: list[dict[str, Any]]
    termination: str
    rounds_used: int
    first_round: VerifierResult | None
    final: VerifierResult | None
    usage: Usage = field(default_factory=Usage)
    steps: int = 0
    tool_calls: int = 0
    invalid_tool_calls: int = 0
    format_errors: int = 0
    seconds: float = 0.0
    error: str | None = None
    human_verdict: str | None = None

    @property
    def passed(self) -> bool:
        if self.human_verdict is not None:
            return self.human_verdict == "accepted"
        return bool(self.final and self.final.passed)


def run_episode(query: str, model: ChatModel, toolbox, verifier: Verifier, user: User, limits: Limits,
                *, system_prompt: str = SYSTEM_PROMPT, tools: list[dict[str, Any]] | None = None,
                sampling: dict[str, Any] | None = None, workspace: Path | None = None,
                history: list[dict[str, Any]] | None = None) -> EpisodeResult:
    """Run one episode to a termination reason; never raises for model, tool or format trouble.

    ``history`` continues an earlier conversation (for multi-subtask evaluation): ``query`` is
    appended to it as the next user message instead of starting a new one.
    """
    from pipelines.agent.tools import TOOL_SCHEMAS

    tools = tools if tools is not None else TOOL_SCHEMAS
    workspace = workspace or getattr(toolbox, "workspace", Path("."))
    messages: list[dict[str, Any]] = list(history) if history else [{"role": "system", "content": system_prompt}]
    messages.append({"role": "user", "content": query})
    res = EpisodeResult(messages=messages, termination="finished", rounds_used=1, first_round=None, final=None)
    started = time.monotonic()
    consecutive_format_errors = 0

    def stop(reason: str, error: str | None = None) -> EpisodeResult:
        res.termination, res.error = reason, error
        res.seconds = time.monotonic() - started
        return res

    while True:
        if res.steps >= limits.max_steps:
            return stop("step_limit")
        if time.monotonic() - started >= limits.max_seconds:
            return stop("time_limit")
        if res.usage.prompt_tokens + res.usage.completion_tokens >= limits.max_tokens:
            return stop("token_limit")
        try:
            reply = model.chat(messages, tools, **(sampling or {}))
        except ContextLengthError as exc:
            return stop("token_limit", str(exc))
        except (EndpointError, ModelError) as exc:
            return stop("infra_error", str(exc))
        res.steps += 1
        res.usage.add(reply.usage)
        if reply.format_error:
            res.format_errors += 1
            consecutive_format_errors += 1
            messages.append({"role": "assistant", "content": reply.raw if reply.raw is not None else reply.content})
            if consecutive_format_errors >= limits.max_format_errors:
                return stop("format_errors", reply.format_error)
            messages.append({"role": "user", "content": (
                f"Your last message could not be read as a tool call: {reply.format_error}. "
                'Call a tool as <tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>')})
            continue
        consecutive_format_errors = 0
        messages.append(reply.message)
        finished = not reply.tool_calls  # a plain-text answer hands the turn back, like finish
        for call in reply.tool_calls:
            res.tool_calls += 1
            if finished:  # calls after finish are not run, but every call id still gets an answer
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": "not run: finish was called"})
                continue
            try:
                out = toolbox.call(call["function"]["name"], call["function"]["arguments"])
            except Exception as exc:  # the sandbox itself broke: not the agent's fault
                return stop("infra_error", f"tool {call['function']['name']} failed: {exc}")
            res.invalid_tool_calls += int(out.is_error)
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": out.output})
            finished = finished or out.finished
        if not finished:
            continue
        result = verifier.verify(workspace)
        if res.first_round is None:
            res.first_round = result
        res.final = result
        if result.infra_error:
            return stop("infra_error", result.infra_error)
        if res.rounds_used >= limits.max_rounds and not _asks_human(user):
            return stop("finished")
        if result.passed and not _asks_human(user):
            return stop("finished")
        try:
            feedback = user.respond(messages, result, query)
        except EpisodeRejected:
            res.human_verdict = "rejected"
            return stop("finished")
        if feedback is None:
            if _asks_human(user):
                res.human_verdict = "accepted"
            return stop("finished")
        if res.rounds_used >= limits.max_rounds:
            return stop("finished")
        messages.append({"role": "user", "content": feedback})
        res.rounds_used += 1


def _asks_human(user: User) -> bool:
    return getattr(user, "kind", "") == "human"
