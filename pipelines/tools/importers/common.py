"""What every importer shares: where a trajectory came from, the conversation it becomes, its meta.

A reader turns one source trajectory (a :class:`Source`) into a :class:`Conversation` in this project's
message form, then :func:`make_record` adds the meta and validates the result as a
:class:`~pipelines.core.schema.TrajectoryRecord`. Tool calls that a source runs in a shell map to this
project's ``bash`` tool (``{"command": ...}``); file edits with an exact equivalent map to ``write_file``
and ``str_replace``; the source's end-of-work action maps to ``finish`` (see each reader).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipelines.core.errors import UserError, first_error
from pipelines.core.schema import TrajectoryRecord

# Verification states carried in meta.imported.verification.
PASSED, FAILED, UNVERIFIED = "passed", "failed", "unverified"
# This project's tools (pipelines.agent.tools); other tool names are counted in meta.imported.unmapped_actions.
OWN_TOOLS = ("bash", "read_file", "write_file", "str_replace", "finish")


@dataclass(frozen=True)
class Source:
    """One trajectory as found: its parsed JSON and where it is (``index``: 0-based position in the file,
    ``line``: the JSONL line, ``single``: the file holds this one trajectory)."""

    path: Path
    shown: str
    index: int
    data: Any
    line: int | None = None
    single: bool = False

    @property
    def where(self) -> str:
        """``FILE``, ``FILE:LINE`` (JSONL) or ``FILE[INDEX]`` (an item of a JSON list), for error messages."""
        if self.line is not None:
            return f"{self.shown}:{self.line}"
        return self.shown if self.single else f"{self.shown}[{self.index}]"

    def fail(self, message: str) -> UserError:
        return UserError(f"{self.where}: {message}")


@dataclass(frozen=True)
class Verification:
    """What the source says about the outcome: :data:`PASSED`, :data:`FAILED` or :data:`UNVERIFIED`, and the
    field (or report) that said it."""

    status: str = UNVERIFIED
    by: str | None = None


def verdict_flag(value: Any, by: str) -> Verification | None:
    """An explicit boolean pass/resolved flag as a verification; None when ``value`` is not a boolean."""
    if isinstance(value, bool):
        return Verification(PASSED if value else FAILED, by)
    return None


def dig(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...`` through dicts, None where a level is missing or not a dict."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def text_of(content: Any) -> str:
    """A message content as text: a string as it is, a list of content parts as their text parts joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content)


def arguments_of(raw: Any, where: str) -> dict[str, Any]:
    """Tool-call arguments as an object: an object as it is, a JSON string parsed (empty means ``{}``)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: tool-call arguments are not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{where}: tool-call arguments must be a JSON object, got {type(raw).__name__}")
    return raw


_RETURNCODE = re.compile(r"\A<returncode>(-?\d+)</returncode>\s*<output>\n?(.*?)\n?</output>\s*\Z", re.DOTALL)


def shell_output(output: str, exit_code: int | None) -> str:
    """A command's output as this project's ``bash`` tool returns it: the text, then ``[exit code N]``."""
    if exit_code is None:
        return output
    sep = "\n" if output and not output.endswith("\n") else ""
    return f"{output}{sep}[exit code {exit_code}]"


def tagged_shell_output(text: str) -> str:
    """mini-swe-agent's ``<returncode>N</returncode><output>...</output>`` observation in the ``bash`` tool's
    form; any other text (a timeout notice, the head-and-tail form of a long output) as it is."""
    match = _RETURNCODE.match(text)
    return shell_output(match.group(2), int(match.group(1))) if match else text


def looks_like_diff(text: Any) -> bool:
    return isinstance(text, str) and ("diff --git " in text or text.startswith("--- "))


@dataclass
class Conversation:
    """The messages of one imported trajectory, built in order.

    Tool-call ids are the source's where it has them, else ``call_<turn>_<k>`` (turn: the number of assistant
    messages before this one), as the agent loop names them. ``note`` holds assistant text (a thought the
    source logged as its own event) for the next assistant message, or as one of its own if none follows.
    """

    messages: list[dict[str, Any]] = field(default_factory=list)
    unmapped: dict[str, int] = field(default_factory=dict)
    _notes: list[str] = field(default_factory=list)

    def system(self, text: str) -> None:
        self._flush()
        self.messages.append({"role": "system", "content": text})

    def user(self, text: str) -> None:
        self._flush()
        self.messages.append({"role": "user", "content": text})

    def note(self, text: str) -> None:
        if text.strip():
            self._notes.append(text.strip())

    def assistant(self, text: str, calls: list[tuple[str, dict[str, Any], str | None]] = (),
                  extra: dict[str, Any] | None = None) -> list[str]:
        """Append an assistant message with ``calls`` (name, arguments, source id or None); returns the ids."""
        if self._notes:  # the logged thoughts come first, as the model wrote them before this turn
            text = "\n\n".join(self._notes + ([text.strip()] if text.strip() else []))
            self._notes = []
        turn = sum(1 for m in self.messages if m["role"] == "assistant")
        message: dict[str, Any] = {"role": "assistant", "content": text}
        ids = [cid or f"call_{turn}_{k}" for k, (_, _, cid) in enumerate(calls)]
        if calls:
            message["tool_calls"] = [{"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                                     for cid, (name, args, _) in zip(ids, calls)]
        message.update(extra or {})
        self.messages.append(message)
        return ids

    def add_call(self, name: str, args: dict[str, Any], cid: str | None) -> str:
        """Add one more call to the last assistant message (several calls of one model response)."""
        last = next(m for m in reversed(self.messages) if m["role"] == "assistant")
        turn = sum(1 for m in self.messages if m["role"] == "assistant") - 1
        calls = last.setdefault("tool_calls", [])
        cid = cid or f"call_{turn}_{len(calls)}"
        calls.append({"id": cid, "type": "function", "function": {"name": name, "arguments": args}})
        return cid

    def result(self, call_id: str, text: str) -> None:
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": text})

    def count_unmapped(self, name: str) -> None:
        self.unmapped[name] = self.unmapped.get(name, 0) + 1

    def _flush(self) -> None:
        if self._notes:
            self.assistant("")

    def done(self) -> list[dict[str, Any]]:
        self._flush()
        return self.messages


def episode_key(fmt: str, messages: list[dict[str, Any]]) -> str:
    """A stable key from the format and the conversation: the same trajectory imported twice gets the same key."""
    blob = json.dumps([fmt, messages], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def make_record(fmt: str, src: Source, messages: list[dict[str, Any]], tools: list[dict[str, Any]], *,
                task_id: str, verification: Verification, model: str | None = None,
                exit_status: str | None = None, submission: Any = None, finished: bool = False,
                tokens: dict[str, Any] | None = None, unmapped: dict[str, int] | None = None, format_errors: int = 0,
                base_meta: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The imported trajectory record: ``messages``, ``tools`` and meta with its provenance, validated.

    ``meta.source`` is ``import:<format>``; ``meta.imported`` holds the format, the file (as given, relative
    to the project when inside it), the 0-based index in it (and the JSONL line), the model, the source's own
    exit status and the verification (``passed``/``failed``/``unverified``, ``verified_by``). ``meta.passed``
    is true only for :data:`PASSED`; a verified record also gets a ``final`` verdict (score 1 or 0) and
    ``verifier`` naming where the verdict came from. ``base_meta`` (a record that already had meta) is kept
    under these fields.
    """
    if not any(m["role"] == "assistant" for m in messages):
        raise src.fail("no assistant turn: nothing to train on")
    request = next((m["content"] for m in messages if m["role"] == "user"), "")
    calls = [c for m in messages for c in m.get("tool_calls") or []]
    imported: dict[str, Any] = {"format": fmt, "file": src.shown, "index": src.index}
    if src.line is not None:
        imported["line"] = src.line
    if base_meta and base_meta.get("source"):
        imported["original_source"] = base_meta["source"]
    for key, value in (("model", model), ("exit_status", exit_status)):
        if value:
            imported[key] = value
    imported["verification"] = verification.status
    if verification.by:
        imported["verified_by"] = verification.by
    if unmapped:
        imported["unmapped_actions"] = dict(sorted(unmapped.items()))
    imported.update(extra or {})
    meta: dict[str, Any] = dict(base_meta or {})
    meta.setdefault("episode_key", episode_key(fmt, messages))
    meta.setdefault("task_id", task_id)
    meta["source"] = f"import:{fmt}"
    meta.setdefault("query", request)
    if model and not meta.get("teacher"):
        meta["teacher"] = model
    meta["passed"] = verification.status == PASSED
    if verification.status != UNVERIFIED:
        if not meta.get("final"):
            meta["final"] = {"passed": meta["passed"], "score": 1.0 if meta["passed"] else 0.0}
        meta.setdefault("verifier", f"import ({verification.by})")
    if finished:
        meta.setdefault("termination", "finished")
    meta.setdefault("steps", sum(1 for m in messages if m["role"] == "assistant"))
    meta.setdefault("tool_calls", len(calls))
    if tokens:
        meta.setdefault("tokens", tokens)
    if format_errors:
        meta.setdefault("format_errors", format_errors)
    if looks_like_diff(submission) and not meta.get("final_diff"):
        meta["final_diff"] = submission
    meta["imported"] = imported
    try:
        record = TrajectoryRecord.model_validate({"messages": messages, "tools": tools, "meta": meta})
    except ValidationError as exc:
        where, msg = first_error(exc)
        raise src.fail(f"the imported trajectory does not fit the schema: {where}: {msg}") from None
    # only what was set: a field the source does not state (domain, rounds) stays absent, not a default
    return record.model_dump(mode="json", exclude_none=True, exclude_unset=True)


@dataclass(frozen=True)
class ResolvedReport:
    """An evaluation report's verdict per instance id (``limi import --resolved``), and its file for ``by``."""

    name: str
    resolved: dict[str, bool]

    def lookup(self, instance_id: str) -> Verification | None:
        value = self.resolved.get(instance_id)
        return None if value is None else Verification(PASSED if value else FAILED, self.name)


def decide(own: Verification | None, report: ResolvedReport | None, instance_id: str) -> Verification:
    """The verification of one trajectory: the report's entry for its instance (an evaluation run after the
    fact) wins, then the source's own explicit flag, else :data:`UNVERIFIED`."""
    return (report.lookup(instance_id) if report else None) or own or Verification()
