"""One function call asked of a chat model, retried until its arguments validate."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from pipelines.synthesis.config import SynthesizeParams
from pipelines.llm.base import ContextLengthError

OUTPUT_CHARS = 300  # of a failed call's raw output, kept in the report to show what the model wrote


@dataclass
class Answer:
    """The validated value of a function call, or the last problem and the start of the last output."""

    value: Any = None
    problem: str = "no answer"
    output: str = ""


class CallCounter:
    """Function-call requests per role and the model seconds they took (for the report)."""

    def __init__(self) -> None:
        self.calls: Counter = Counter()
        self.seconds: Counter = Counter()

    def add(self, role: str, seconds: float) -> None:
        self.calls[role] += 1
        self.seconds[role] += seconds


def shorten(text: str, limit: int | None) -> str:
    """``text`` cut at ``limit`` characters with " ..." (unchanged when shorter or ``limit`` is None)."""
    return text if limit is None or len(text) <= limit else text[:limit].rstrip() + " ..."


Validator = Callable[[dict[str, Any]], tuple[Any, str | None]]


def call_function(model, prompt: str, tool: dict[str, Any], validate: Validator, p: SynthesizeParams,
                  counter: CallCounter, role: str) -> Answer:
    """Ask ``model`` to call ``tool`` until ``validate`` accepts the arguments, at most ``p.attempts`` times.

    The first attempt samples with the model's own settings (greedy by default); later ones at
    ``retry_temperature`` with a new seed, since a greedy retry would repeat the same answer.
    """
    name = tool["function"]["name"]
    answer = Answer()
    for attempt in range(p.attempts):
        sampling: dict[str, Any] = {"max_tokens": p.max_tokens, "parallel_tool_calls": False, "seed": attempt,
                                    "tool_choice": {"type": "function", "function": {"name": name}}}
        if attempt:
            sampling["temperature"] = p.retry_temperature
        started = time.perf_counter()
        try:
            reply = model.chat([{"role": "user", "content": prompt}], [tool], **sampling)
        except ContextLengthError as exc:  # the prompt will not shrink on a retry
            counter.add(role, time.perf_counter() - started)
            return Answer(problem=f"context too long: {exc}")
        counter.add(role, reply.usage.seconds or (time.perf_counter() - started))
        functions = [c["function"] for c in reply.tool_calls]
        written = reply.raw if reply.raw is not None else json.dumps(functions) if functions else reply.content
        answer.output = shorten(written, OUTPUT_CHARS)
        if reply.format_error and reply.finish_reason == "length":
            answer.problem = f"output cut at max_tokens={p.max_tokens} inside the function call"
            continue
        if reply.format_error:
            answer.problem = f"unparsable function call: {reply.format_error}"
            continue
        calls = [c for c in reply.tool_calls if c["function"]["name"] == name]
        if not calls:
            answer.problem = f"did not call {name}"
            continue
        args = calls[0]["function"]["arguments"]
        value, problem = validate(args) if isinstance(args, dict) else (None, "arguments are not a JSON object")
        if problem is None:
            return Answer(value, "", answer.output)
        answer.problem = problem
    return answer
