"""Every episode as an MLflow trace: what the agent was shown and did, call by call, next to the stage's run.

    tracer = EpisodeTracer.for_stage(run, "collect")     # None when no MLflow run records the stage
    tape = EpisodeTape() if tracer else None
    session = harness.run(query, model, user, root=root, tape=tape)
    if tracer:
        tracer.record(tape, session, name="episode", query=query.query, tags={"limi.task_id": query.id})

The harness hands a :class:`EpisodeTape` to thin wrappers around the model, the toolbox, the verifier and
the user: each wrapper passes the call through unchanged and notes when it started and ended, what went
in and what came out. The agent loop does not know about them, and the records the stages write are the
same bytes with or without a tape. After the session, :meth:`EpisodeTracer.record` turns the tape into one
trace: a root span for the episode (eval: the trial, with a child span per subtask), a ``CHAT_MODEL`` span
per model call (the messages sent, each cut to :data:`MESSAGE_CHARS`; the reply; prompt, completion and
cached tokens; latency), a ``TOOL`` span per tool call (arguments, output cut, exit status where the tool
reports one), an ``EVALUATOR`` span per verification round and a span per round of user feedback. The
final verdict of every check (requirement) becomes a feedback assessment on the trace, with ``passed``,
``score`` and ``first_round_passed`` for the episode as a whole.

Traces are tagged with the stage, the stage's MLflow run id (and linked to that run: the run's Traces tab
lists them), the task, the teacher or model and, in a DVC experiment, ``dvc.experiment``. Every string is
scrubbed of secret values (:func:`pipelines.core.tracking.scrub`) before it leaves the process.

A trace is a record, not the work: the first failure (an unreachable store, say) logs one warning and
turns tracing off for the rest of the stage; the episode and the stage go on. ``LIMI_TRACES=0`` turns
tracing off altogether; otherwise it is on whenever an MLflow run records the stage.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

SWITCH_ENV = "LIMI_TRACES"
MESSAGE_CHARS = 2000  # per message content (and per tool argument) in a span: enough to read a turn
OUTPUT_CHARS = 4000  # a tool's output, a reply, a check's output
_EXIT_CODE = re.compile(r"\[exit code (-?\d+)\]\s*$")


# ------------------------------------------------------------------ the tape
@dataclass
class TapeEvent:
    """One call the session made: ``kind`` is ``model``, ``tool``, ``verify`` or ``feedback``; ``step`` the
    subtask it belongs to (1-based); times in nanoseconds since the epoch."""

    kind: str
    step: int
    start_ns: int
    end_ns: int = 0
    data: dict[str, Any] = field(default_factory=dict)


class EpisodeTape:
    """What one session did, in order. Filled by the wrappers the harness puts around its parts; read
    once the session is over. The wrappers never change an argument or a result."""

    def __init__(self) -> None:
        self.events: list[TapeEvent] = []
        self.step = 1
        self.start_ns = time.time_ns()
        self.end_ns = 0

    def begin_step(self, number: int) -> None:
        """The session starts step (subtask) ``number``; calls from now on belong to it."""
        self.step = number

    def finish(self) -> None:
        self.end_ns = time.time_ns()

    def _open(self, kind: str, **data: Any) -> TapeEvent:
        event = TapeEvent(kind, self.step, time.time_ns(), data=data)
        self.events.append(event)
        return event

    # the wrappers, one per part the loop talks to
    def model(self, model: Any) -> Any:
        return _TapedModel(model, self)

    def toolbox(self, toolbox: Any) -> Any:
        return _TapedToolbox(toolbox, self)

    def verifier(self, verifier: Any) -> Any:
        return _TapedVerifier(verifier, self)

    def user(self, user: Any) -> Any:
        return _TapedUser(user, self)


class _Passthrough:
    """Forwards every attribute it does not define to the wrapped object."""

    def __init__(self, inner: Any, tape: EpisodeTape):
        self._inner = inner
        self._tape = tape

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _TapedModel(_Passthrough):
    def chat(self, messages, tools=None, **sampling):
        # the loop only appends to ``messages``, so its first n entries are what this call was shown
        event = self._tape._open("model", messages=messages, sent=len(messages),
                                 model=str(getattr(self._inner, "name", "")))
        try:
            reply = self._inner.chat(messages, tools, **sampling)
        except BaseException as exc:
            event.data["error"] = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            event.end_ns = time.time_ns()
        event.data["reply"] = reply
        return reply


class _TapedToolbox(_Passthrough):
    def call(self, name, arguments):
        event = self._tape._open("tool", name=name, arguments=arguments)
        try:
            result = self._inner.call(name, arguments)
        except BaseException as exc:
            event.data["error"] = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            event.end_ns = time.time_ns()
        event.data["result"] = result
        return result


class _TapedVerifier(_Passthrough):
    def verify(self, workspace):
        event = self._tape._open("verify")
        try:
            result = self._inner.verify(workspace)
        except BaseException as exc:
            event.data["error"] = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            event.end_ns = time.time_ns()
        event.data["result"] = result
        return result


class _TapedUser(_Passthrough):
    def respond(self, messages, result, query):
        event = self._tape._open("feedback")
        try:
            feedback = self._inner.respond(messages, result, query)
        except BaseException as exc:  # EpisodeRejected: the person at the terminal ended the episode
            event.data["rejected"] = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            event.end_ns = time.time_ns()
        event.data["feedback"] = feedback
        return feedback


# ------------------------------------------------------------------ the tracer
def tracing_enabled() -> bool:
    """False when ``LIMI_TRACES`` says off (0, false, no, off)."""
    return os.environ.get(SWITCH_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


class EpisodeTracer:
    """Writes episode traces for one stage run; safe to share between the stage's threads.

    ``tags`` go on every trace (stage, run id, DVC experiment). After the first failure every call is a
    no-op: one warning per stage, never an exception.
    """

    def __init__(self, stage: str, run_id: str, experiment_id: str, *, tags: dict[str, str] | None = None):
        from pipelines.core.tracking import secret_values

        self.stage = stage
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.active = True
        self.trace_ids: list[str] = []
        self._secrets = secret_values()
        self._lock = threading.Lock()
        self._checked = False
        self.tags = {"limi.stage": stage, "limi.run_id": run_id, **(tags or {})}
        experiment = os.environ.get("DVC_EXP_NAME")
        if experiment:
            self.tags["dvc.experiment"] = experiment

    @classmethod
    def for_stage(cls, run: Any, stage: str) -> "EpisodeTracer | None":
        """A tracer for the stage run ``run`` (a :class:`~pipelines.core.tracking.StageRun`), or None when
        no run is recording the stage or ``LIMI_TRACES`` turns tracing off."""
        if run is None or not getattr(run, "active", False) or not getattr(run, "run_id", None):
            return None
        if not tracing_enabled():
            return None
        experiment_id = getattr(run, "experiment_id", None)
        if not experiment_id:
            return None
        return cls(stage, run.run_id, experiment_id)

    def tape(self) -> EpisodeTape | None:
        """A fresh tape while tracing is on, else None (the harness then wraps nothing)."""
        return EpisodeTape() if self.active else None

    def record(self, tape: EpisodeTape | None, session: Any = None, *, name: str, query: str,
               tags: dict[str, Any], steps: list[str] | None = None, error: str | None = None) -> str | None:
        """Write the trace of a finished session (or, with ``error``, of one the harness gave up on), with
        ``query`` as the root span's input.

        ``steps`` names the session's subtasks (eval): each gets a child span of the root; without it the
        calls hang off the root itself. Returns the trace id, or None when nothing was written.
        """
        if tape is None or not self.active:
            return None
        with self._lock:
            if not self.active:
                return None
            try:
                self._check_store()
                return self._write(tape, session, name=name, query=query, tags=tags, steps=steps, error=error)
            except Exception as exc:  # tracing is a record: it never costs the episode or the stage
                self.active = False
                detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.warning("MLflow tracing failed (%s); the %s stage goes on without episode traces",
                            self._scrub(detail)[:300], self.stage)
                return None

    # -- internals
    def _check_store(self) -> None:
        """Once per stage: the store answers (an unreachable one fails here, before any span is made)."""
        if self._checked:
            return
        from mlflow import MlflowClient

        MlflowClient().get_experiment(self.experiment_id)
        self._checked = True

    def _scrub(self, text: str) -> str:
        from pipelines.core.tracking import scrub

        return scrub(text, self._secrets)

    def _clean(self, value: Any) -> Any:
        """``value`` as JSON-able data with every string scrubbed of secrets."""
        if isinstance(value, str):
            return self._scrub(value)
        if isinstance(value, dict):
            return {self._scrub(str(k)): self._clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._clean(v) for v in value]
        if value is None or isinstance(value, (bool, int, float)):
            return value
        return self._scrub(str(value))

    def _write(self, tape: EpisodeTape, session: Any, *, name: str, query: str, tags: dict[str, Any],
               steps: list[str] | None, error: str | None) -> str:
        from mlflow import MlflowClient
        from mlflow.entities import SpanType

        client = MlflowClient()
        end_ns = tape.end_ns or time.time_ns()
        all_tags = {k: self._scrub(str(v))[:250] for k, v in {**self.tags, **tags}.items() if v is not None}
        root = client.start_trace(
            name, span_type=SpanType.AGENT, experiment_id=self.experiment_id, run_id=self.run_id,
            start_time_ns=tape.start_ns, tags=all_tags,
            inputs=self._clean({"query": cut(query, OUTPUT_CHARS)}))
        trace_id = root.trace_id
        try:
            by_step: dict[int, list[TapeEvent]] = {}
            for event in tape.events:
                by_step.setdefault(event.step, []).append(event)
            episodes = list(getattr(session, "episodes", None) or [])
            if steps:
                for number, title in enumerate(steps, 1):
                    events = by_step.get(number, [])
                    if not events and number > len(episodes):
                        continue  # a subtask the trial never reached
                    start = events[0].start_ns if events else tape.start_ns
                    stop = max((e.end_ns for e in events), default=start) or start
                    span = client.start_span(f"subtask {number}", trace_id=trace_id, parent_id=root.span_id,
                                             span_type=SpanType.CHAIN, start_time_ns=start,
                                             inputs=self._clean({"query": cut(title, OUTPUT_CHARS)}))
                    self._calls(client, trace_id, span.span_id, events)
                    episode = episodes[number - 1] if number <= len(episodes) else None
                    client.end_span(trace_id, span.span_id, end_time_ns=stop,
                                    outputs=self._clean(_episode_outputs(episode)),
                                    attributes=self._clean(_episode_attributes(episode)),
                                    status="OK" if episode is not None and episode.termination != "infra_error"
                                    else "ERROR")
            else:
                self._calls(client, trace_id, root.span_id, tape.events)
            last = episodes[-1] if episodes else None
            usage = session.usage() if session is not None else None
            attributes = {"prompt_tokens": usage.prompt_tokens if usage else 0,
                          "completion_tokens": usage.completion_tokens if usage else 0,
                          "cached_tokens": usage.cached_tokens if usage else 0,
                          **_episode_attributes(last)}
            outputs = {**_episode_outputs(last), "error": error} if error else _episode_outputs(last)
            failed = error is not None or last is None or last.termination == "infra_error"
            client.end_trace(trace_id, outputs=self._clean(outputs), attributes=self._clean(attributes),
                             status="ERROR" if failed else "OK", end_time_ns=end_ns)
        except BaseException:
            with contextlib.suppress(Exception):  # do not leave the trace open in MLflow's memory
                client.end_trace(trace_id, status="ERROR")
            raise
        _flush()
        self._assess(trace_id, session, steps=steps)
        self.trace_ids.append(trace_id)
        return trace_id

    def _calls(self, client, trace_id: str, parent: str, events: list[TapeEvent]) -> None:
        """One span per tape event under ``parent``, with the times the calls really took."""
        from mlflow.entities import SpanType

        round_number = 1
        for event in events:
            kind, data = event.kind, event.data
            if kind == "model":
                reply = data.get("reply")
                sent = [message_view(m) for m in data["messages"][: data["sent"]]]
                usage = getattr(reply, "usage", None)
                attributes = {"model": data["model"], "latency_s": round((event.end_ns - event.start_ns) / 1e9, 4),
                              "messages_sent": data["sent"]}
                if usage is not None:
                    attributes.update({
                        "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                        "cached_tokens": usage.cached_tokens, "attempts": usage.attempts,
                        "mlflow.chat.tokenUsage": {"input_tokens": usage.prompt_tokens,
                                                   "output_tokens": usage.completion_tokens,
                                                   "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                                                   "cache_read_input_tokens": usage.cached_tokens}})
                if reply is not None and reply.format_error:
                    attributes["format_error"] = reply.format_error
                    attributes["raw"] = cut(reply.raw or "", OUTPUT_CHARS)
                outputs = message_view(reply.message, OUTPUT_CHARS) if reply is not None else None
                self._span(client, trace_id, parent, "chat", SpanType.CHAT_MODEL, event, {"messages": sent},
                           outputs, attributes, data.get("error"))
            elif kind == "tool":
                result = data.get("result")
                attributes: dict[str, Any] = {"tool": data["name"]}
                outputs = None
                if result is not None:
                    code = _EXIT_CODE.search(result.output) if data["name"] == "bash" else None
                    if code:
                        attributes["exit_code"] = int(code.group(1))
                    attributes.update({"is_error": result.is_error, "finished": result.finished})
                    outputs = {"output": cut(result.output, OUTPUT_CHARS)}
                self._span(client, trace_id, parent, str(data["name"])[:100], SpanType.TOOL, event,
                           {"arguments": arguments_view(data["arguments"])}, outputs, attributes, data.get("error"))
            elif kind == "verify":
                result = data.get("result")
                attributes = {"round": round_number}
                outputs = None
                if result is not None:
                    attributes.update({"kind": result.kind, "passed": result.passed, "score": round(result.score, 4)})
                    if result.infra_error:
                        attributes["infra_error"] = cut(result.infra_error, OUTPUT_CHARS)
                    outputs = {"passed": result.passed, "score": round(result.score, 4),
                               "checks": [check_view(c) for c in result.checks]}
                self._span(client, trace_id, parent, "verify", SpanType.EVALUATOR, event, None, outputs,
                           attributes, data.get("error"))
            elif kind == "feedback":
                feedback = data.get("feedback")
                attributes = {"round": round_number, "accepted": feedback is None and "rejected" not in data}
                if "rejected" in data:
                    attributes["rejected"] = True
                self._span(client, trace_id, parent, "user feedback", SpanType.UNKNOWN, event, None,
                           {"feedback": cut(feedback or "", OUTPUT_CHARS)}, attributes, None)
                round_number += 1

    def _span(self, client, trace_id: str, parent: str, name: str, span_type: str, event: TapeEvent,
              inputs: Any, outputs: Any, attributes: dict[str, Any], error: str | None) -> None:
        span = client.start_span(name, trace_id=trace_id, parent_id=parent, span_type=span_type,
                                 start_time_ns=event.start_ns, inputs=self._clean(inputs))
        if error:
            attributes = {**attributes, "error": cut(error, OUTPUT_CHARS)}
        client.end_span(trace_id, span.span_id, outputs=self._clean(outputs), attributes=self._clean(attributes),
                        status="ERROR" if error else "OK", end_time_ns=event.end_ns or event.start_ns)

    def _assess(self, trace_id: str, session: Any, *, steps: list[str] | None) -> None:
        """The verifier's final verdict per check, and the episode's, as feedback assessments on the trace."""
        from mlflow.entities import AssessmentSource, Feedback
        from mlflow.tracing.client import TracingClient

        client = TracingClient()
        episodes = list(getattr(session, "episodes", None) or [])
        code = AssessmentSource(source_type="CODE", source_id="verifier")
        judge = AssessmentSource(source_type="LLM_JUDGE", source_id="judge")
        for number, episode in enumerate(episodes, 1):
            final = episode.final
            for index, check in enumerate(final.checks if final else [], 1):
                # the check itself (a command, a rubric criterion): the requirement sentence may be generic
                label = ((check.name or "").strip().splitlines() or [f"check {index}"])[0]
                label = f"{number}. {label}" if steps else label
                client.log_assessment(trace_id, Feedback(
                    name=self._scrub(label)[:100], value=bool(check.passed),
                    source=judge if check.method == "judge" else code,
                    rationale=self._scrub(cut(check.output or "", OUTPUT_CHARS)) or None,
                    metadata={"requirement": self._scrub(cut(check.requirement or "", 500)), "method": check.method,
                              "subtask": str(number), "round": str(episode.rounds_used)}))
        last = episodes[-1] if episodes else None
        passed = bool(last and last.passed and (not steps or len(episodes) == len(steps)))
        first = bool(last and all(e.first_round and e.first_round.passed for e in episodes)
                     and (not steps or len(episodes) == len(steps)))
        score = round(last.final.score, 4) if last and last.final else 0.0
        for name, value in (("passed", passed), ("first_round_passed", first), ("score", score)):
            client.log_assessment(trace_id, Feedback(name=name, value=value, source=code))


def _flush() -> None:
    """Wait for MLflow's background export, so the assessments find their trace in the store."""
    import mlflow

    flush = getattr(mlflow, "flush_trace_async_logging", None)
    if flush is not None:
        flush()


def _episode_outputs(episode: Any) -> dict[str, Any]:
    if episode is None:
        return {}
    final = episode.final
    return {"termination": episode.termination, "passed": episode.passed,
            "score": round(final.score, 4) if final else None, "rounds_used": episode.rounds_used,
            **({"error": cut(episode.error, OUTPUT_CHARS)} if episode.error else {})}


def _episode_attributes(episode: Any) -> dict[str, Any]:
    if episode is None:
        return {}
    return {"termination": episode.termination, "passed": episode.passed, "rounds_used": episode.rounds_used,
            "steps": episode.steps, "tool_calls": episode.tool_calls,
            "invalid_tool_calls": episode.invalid_tool_calls, "format_errors": episode.format_errors}


# ------------------------------------------------------------------ views of what a span shows
def cut(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` within ``limit`` characters: head and tail with a note of what was left out."""
    text = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False, default=str)
    if len(text) <= limit:
        return text
    head, tail = limit * 2 // 3, limit // 3
    return f"{text[:head]}\n[... {len(text) - head - tail} characters cut ...]\n{text[-tail:]}"


def message_view(message: dict[str, Any], limit: int = MESSAGE_CHARS) -> dict[str, Any]:
    """A chat message as a span shows it: content and every tool-call argument cut to ``limit``."""
    view: dict[str, Any] = {"role": message.get("role")}
    if message.get("content") is not None:
        view["content"] = cut(str(message.get("content") or ""), limit)
    for key in ("tool_call_id", "name"):
        if key in message:
            view[key] = message[key]
    if message.get("reasoning_content"):
        view["reasoning_content"] = cut(str(message["reasoning_content"]), limit)
    if message.get("tool_calls"):
        view["tool_calls"] = [{"id": c.get("id"), "type": c.get("type", "function"),
                               "function": {"name": c.get("function", {}).get("name"),
                                            "arguments": arguments_view(c.get("function", {}).get("arguments"),
                                                                        limit)}}
                              for c in message["tool_calls"]]
    return view


def arguments_view(arguments: Any, limit: int = MESSAGE_CHARS) -> Any:
    """Tool-call arguments with each string value cut to ``limit`` (a JSON text is cut as a whole)."""
    if isinstance(arguments, dict):
        return {str(k): cut(v, limit) if isinstance(v, str) else v for k, v in arguments.items()}
    if isinstance(arguments, str):
        return cut(arguments, limit)
    return arguments


def check_view(check: Any) -> dict[str, Any]:
    return {"name": cut(check.name, 200), "requirement": cut(check.requirement or "", 300), "passed": check.passed,
            "method": check.method, "exit_code": check.exit_code, "output": cut(check.output or "", 1000)}
