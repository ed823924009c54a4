"""The collaborating user: what answers the agent when its work does not pass yet.

- :class:`SimulatedUser` turns the verifier's result into a short, specific request under a feedback
  policy (:mod:`pipelines.agent.feedback`: the unmet requirements in the task's public words, never a
  hidden check or an answer), optionally phrased by the user-simulator model, which sees only that text.
- :class:`HumanUser` shows the person at the terminal the transcript so far and the check results,
  and takes their feedback (an empty answer accepts the work, ``reject`` ends the episode).

``respond`` returns the next user message, or None when the user ends the episode.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, Protocol, TextIO

from pipelines.agent.feedback import FeedbackPolicy, feedback_text
from pipelines.agent.verifiers import VerifierResult

SIMULATOR_PROMPT = """You play a developer who asked an assistant for help. The assistant says it is done, but
automatic checks found problems. Write the developer's next message: one to three sentences, specific
about what is still wrong, in your own words, without code and without mentioning that checks are automatic.

Original request:
{query}

What is still wrong:
{results}

The developer's message:"""


class User(Protocol):
    kind: str

    def respond(self, messages: list[dict[str, Any]], result: VerifierResult, query: str) -> str | None: ...


class SimulatedUser:
    """Feedback on the unmet requirements under ``policy``; with a model, phrased as a person would.

    The simulator model is shown only the policy's text, never the checks: what it cannot see it cannot
    pass on.
    """

    kind = "simulated"

    def __init__(self, model=None, max_tokens: int = 120, policy: FeedbackPolicy = "requirements"):
        self.model = model
        self.max_tokens = max_tokens
        self.policy = policy

    def respond(self, messages: list[dict[str, Any]], result: VerifierResult, query: str) -> str | None:
        template = feedback_text(result, self.policy)
        if self.model is None or self.policy == "none":
            return template
        prompt = SIMULATOR_PROMPT.format(query=query, results=template)
        try:
            reply = self.model.chat([{"role": "user", "content": prompt}], None, max_tokens=self.max_tokens)
        except Exception:  # a failing simulator must not cost the episode; the template still carries the facts
            return template
        text = reply.content.strip()
        return f"{text}\n\n{template}" if text else template


class HumanUser:
    """A person at the terminal, as LIMI's annotators worked: read, then type feedback or accept."""

    kind = "human"

    def __init__(self, read: Callable[[str], str] = input, out: TextIO | None = None, max_tool_chars: int = 800):
        self.read = read
        self.out = out or sys.stdout
        self.max_tool_chars = max_tool_chars
        self.shown = 0

    def show(self, messages: list[dict[str, Any]]) -> None:
        """Print the messages not shown yet."""
        for msg in messages[self.shown:]:
            self.out.write(render_message(msg, self.max_tool_chars) + "\n")
        self.shown = len(messages)
        self.out.flush()

    def respond(self, messages: list[dict[str, Any]], result: VerifierResult, query: str) -> str | None:
        self.show(messages)
        self.out.write(f"\n=== checks: {'PASS' if result.passed else 'FAIL'} (score {result.score:.2f})\n")
        self.out.write(result.summary() + "\n")
        self.out.write("Your feedback (empty line accepts the work, 'reject' ends the episode): ")
        self.out.flush()
        try:
            answer = self.read("").strip()
        except EOFError:
            return None
        if not answer or answer.lower() in ("accept", "ok", "y", "yes"):
            return None
        if answer.lower() in ("reject", "r", "q", "quit"):
            raise EpisodeRejected("rejected by the user")
        return answer


class EpisodeRejected(Exception):
    """The human user rejected the episode."""


def render_message(msg: dict[str, Any], max_tool_chars: int = 800) -> str:
    """One message as a person reads it in a terminal."""
    role = msg["role"]
    if role == "tool":
        body = str(msg.get("content") or "")
        if len(body) > max_tool_chars:
            body = body[: max_tool_chars // 2] + f"\n[... {len(body) - max_tool_chars} chars ...]\n" + body[-max_tool_chars // 2:]
        return f"[tool result]\n{body}"
    parts = [f"[{role}] {msg.get('content') or ''}".rstrip()]
    for call in msg.get("tool_calls") or []:
        fn = call["function"]
        parts.append(f"  -> {fn['name']}({json.dumps(fn['arguments'], ensure_ascii=False)[:300]})")
    return "\n".join(parts)
