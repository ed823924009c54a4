"""The agent loop: one linear history, tools in a sandbox, rounds of user feedback.

    result = run_episode(query_text, model, toolbox, verifier, user, limits)

A turn asks the model for the next assistant message; its tool calls run through the toolbox and
their results are appended as ``tool`` messages. When the agent calls ``finish`` (or answers in plain
text, the only way in a tool set without ``finish``), the verifier runs; if it fails and rounds remain,
the user answers and the episode goes on.
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
from pipelines.llm.base import ChatModel, ContextLengthError, EndpointError, Reply, Usage

TERMINATIONS = ("finished", "step_limit", "token_limit", "time_limit", "format_errors", "infra_error")

SYSTEM_PROMPT = """You are an autonomous software and research agent working in a sandboxed workspace (the current directory).
Use the tools to inspect files, run commands, and edit files. Work step by step: look before you change,
run the checks you can, and call `finish` with a short summary when the task is complete.
Call tools with a JSON object inside <tool_call></tool_call> tags."""
#: what a turn that could not be read as a tool call is told (after the parse error)
FORMAT_HINT = 'Call a tool as <tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>'

#: the prompt for the ``limi`` tool set (pipelines.agent.toolsets): no finish tool, so the answer without a
#: tool call is what hands the turn back
LIMI_SYSTEM_PROMPT = """You are an autonomous software and research agent working in a sandboxed workspace (the current directory).
Use the tools to inspect files, run commands, and edit files. Work step by step: look before you change,
run the checks you can. File tools take absolute paths inside the workspace (`pwd` shows its path; relative
paths are taken from it). When the task is complete, reply with a short summary and no tool call.
Call tools with a JSON object inside <tool_call></tool_call> tags."""
LIMI_FORMAT_HINT = ('Call a tool as <tool_call>\n{"name": "run_shell_command", "arguments": {"command": "ls"}}\n'
                    '</tool_call>, or answer without a tool call when the task is complete')


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
    #: the episode's first assistant turn parsed as tool calls that all name an offered tool with arguments
    #: fitting its schema (None: the episode ended before the model's first turn)
    first_turn_valid: bool | None = None
    #: ``finish`` calls the tools accepted (each one handed the turn back)
    finish_calls: int = 0
    #: turns where a tool call was due and none could be read: every format error, and, when the offered
    #: tools include ``finish`` (so the work ends with a call), every plain-text turn. Tool-call validity
    #: counts each as an invalid call (pipelines.evaluation.metrics.tool_call_validity).
    missed_calls: int = 0

    @property
    def passed(self) -> bool:
        if self.human_verdict is not None:
            return self.human_verdict == "accepted"
        return bool(self.final and self.final.passed)


def run_episode(query: str, model: ChatModel, toolbox, verifier: Verifier, user: User, limits: Limits,
                *, system_prompt: str = SYSTEM_PROMPT, tools: list[dict[str, Any]] | None = None,
                sampling: dict[str, Any] | None = None, workspace: Path | None = None,
                history: list[dict[str, Any]] | None = None, format_hint: str = FORMAT_HINT) -> EpisodeResult:
    """Run one episode to a termination reason; never raises for model, tool or format trouble.

    ``history`` continues an earlier conversation (for multi-subtask evaluation): ``query`` is
    appended to it as the next user message instead of starting a new one. ``tools``, ``system_prompt`` and
    ``format_hint`` come from the agent's tool set (:mod:`pipelines.agent.toolsets`; default: the default set).
    """
    from pipelines.agent.tools import TOOL_SCHEMAS, well_formed_call

    messages: list[dict[str, Any]] = list(history) if history else [{"role": "system", "content": system_prompt}]
    messages.append({"role": "user", "content": query})
    tools = tools if tools is not None else TOOL_SCHEMAS
    episode = _Episode(messages, limits, format_hint,
                       calls_due=any(t.get("function", {}).get("name") == "finish" for t in tools))
    while not episode.done:
        reply = episode.ask(model, tools, sampling or {})
        if reply is None:
            continue
        if episode.result.first_turn_valid is None:
            episode.result.first_turn_valid = (reply.format_error is None and bool(reply.tool_calls)
                                               and all(well_formed_call(call, tools) for call in reply.tool_calls))
        if reply.format_error:
            episode.reject(reply)
        elif episode.act(reply, toolbox):
            episode.verify(verifier, user, query, workspace or getattr(toolbox, "workspace", Path(".")))
    return episode.result


class _Episode:
    """The state of one running episode; each method takes one turn's part and may end the episode."""

    def __init__(self, messages: list[dict[str, Any]], limits: Limits, format_hint: str = FORMAT_HINT,
                 calls_due: bool = True):
        self.format_hint = format_hint
        #: the tools end the work with a ``finish`` call, so a plain-text turn is a call not made
        self.calls_due = calls_due
        self.result = EpisodeResult(messages=messages, termination="finished", rounds_used=1, first_round=None,
                                    final=None)
        self.limits = limits
        self.started = time.monotonic()
        self.done = False
        self.consecutive_format_errors = 0

    def stop(self, reason: str, error: str | None = None) -> None:
        self.result.termination, self.result.error = reason, error
        self.result.seconds = time.monotonic() - self.started
        self.done = True

    def ask(self, model: ChatModel, tools: list[dict[str, Any]], sampling: dict[str, Any]) -> Reply | None:
        """The model's next turn, counted; None when a limit or the model ended the episode instead."""
        res, limits = self.result, self.limits
        if res.steps >= limits.max_steps:
            return self.stop("step_limit")
        if time.monotonic() - self.started >= limits.max_seconds:
            return self.stop("time_limit")
        if res.usage.prompt_tokens + res.usage.completion_tokens >= limits.max_tokens:
            return self.stop("token_limit")
        try:
            reply = model.chat(res.messages, tools, **sampling)
        except ContextLengthError as exc:
            return self.stop("token_limit", str(exc))
        except (EndpointError, ModelError) as exc:
            return self.stop("infra_error", str(exc))
        res.steps += 1
        res.usage.add(reply.usage)
        return reply

    def reject(self, reply: Reply) -> None:
        """A turn that could not be read as a tool call: shown to the model with the format, up to a limit."""
        self.result.format_errors += 1
        self.result.missed_calls += 1
        self.consecutive_format_errors += 1
        messages = self.result.messages
        messages.append({"role": "assistant", "content": reply.raw if reply.raw is not None else reply.content})
        if self.consecutive_format_errors >= self.limits.max_format_errors:
            return self.stop("format_errors", reply.format_error)
        messages.append({"role": "user", "content": (
            f"Your last message could not be read as a tool call: {reply.format_error}. {self.format_hint}")})

    def act(self, reply: Reply, toolbox) -> bool:
        """Run the turn's tool calls; True when the agent handed the turn back (``finish`` or plain text)."""
        self.consecutive_format_errors = 0
        res = self.result
        turn = sum(1 for m in res.messages if m.get("role") == "assistant")
        for k, call in enumerate(reply.tool_calls):
            # ids from the conversation's own turn count, not a process-wide one that the pool's threads share
            call["id"] = f"call_{turn}_{k}"
        res.messages.append(reply.message)
        finished = not reply.tool_calls  # a plain-text answer hands the turn back, like finish
        res.missed_calls += int(finished and self.calls_due)
        for call in reply.tool_calls:
            res.tool_calls += 1
            if finished:  # calls after finish are not run, but every call id still gets an answer
                res.messages.append({"role": "tool", "tool_call_id": call["id"],
                                     "content": "not run: finish was called"})
                continue
            try:
                out = toolbox.call(call["function"]["name"], call["function"]["arguments"])
            except Exception as exc:  # the sandbox itself broke: not the agent's fault
                self.stop("infra_error", f"tool {call['function']['name']} failed: {exc}")
                return False
            res.invalid_tool_calls += int(out.is_error)
            res.finish_calls += int(out.finished)
            res.messages.append({"role": "tool", "tool_call_id": call["id"], "content": out.output})
            finished = finished or out.finished
        return finished

    def verify(self, verifier: Verifier, user: User, query: str, workspace: Path) -> None:
        """Check the work; end the episode, or give the user's feedback and start the next round."""
        res = self.result
        result = verifier.verify(workspace)
        if res.first_round is None:
            res.first_round = result
        res.final = result
        human = _asks_human(user)
        if result.infra_error:
            return self.stop("infra_error", result.infra_error)
        if (res.rounds_used >= self.limits.max_rounds or result.passed) and not human:
            return self.stop("finished")
        try:
            feedback = user.respond(res.messages, result, query)
        except EpisodeRejected:
            res.human_verdict = "rejected"
            return self.stop("finished")
        if feedback is None:
            if human:
                res.human_verdict = "accepted"
            return self.stop("finished")
        if res.rounds_used >= self.limits.max_rounds:
            return self.stop("finished")
        res.messages.append({"role": "user", "content": feedback})
        res.rounds_used += 1


def _asks_human(user: User) -> bool:
    return getattr(user, "kind", "") == "human"
