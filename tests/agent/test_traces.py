"""Episodes as MLflow traces: the harness with the scripted backend writes a trace into a real SQLite store
whose spans match the record's turns and tool calls, with the verifier's verdicts as assessments; secrets
never reach a span; a store that fails costs one warning, never the episode; the record is the same bytes
with and without tracing."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.agent.config import HarnessParams
from pipelines.agent.harness import Harness
from pipelines.agent.sandbox.bwrap import BwrapSandbox
from pipelines.agent.traces import EpisodeTape, EpisodeTracer, cut, message_view
from pipelines.agent.users import SimulatedUser
from pipelines.core.schema import Query, VerifierSpec
from pipelines.core.tracking import stage_run
from pipelines.llm.scripted import ScriptedModel

SETTINGS = HarnessParams(rounds=2, sandbox="bwrap" if BwrapSandbox.available() else "none")
QUERY = Query(id="hello", source="human", domain="software", category="algorithm", query="Write a.txt.",
              workspace={"files": {"README": "tiny\n"}},
              verifier=VerifierSpec(kind="tests", commands=["test -f a.txt"]))
#: secret-looking variables the stages may run with; none of their values may reach a trace
MARKERS = {"OPENAI_API_KEY": "sk-marker-openai-51aa", "GITHUB_TOKEN": "ghp_marker_github_72bb",
           "AWS_ACCESS_KEY_ID": "AKIAMARKER93CC", "AWS_SECRET_ACCESS_KEY": "marker-aws-secret-14dd",
           "HF_TOKEN": "hf_marker_hub_35ee"}


@dataclass
class Step:
    query: str
    verifier: VerifierSpec


def call(*calls: tuple[str, dict]) -> dict:
    return {"content": "", "tool_calls": [{"type": "function", "function": {"name": n, "arguments": a}}
                                          for n, a in calls]}


def script() -> list[dict]:
    """Prints the environment and echoes every secret (so they are in arguments and outputs), claims to be
    done too early (round 1 fails, the user answers), then writes a.txt with a secret in it and finishes."""
    echo = "echo " + " ".join(MARKERS.values()) + "; env"
    return [call(("bash", {"command": echo})),
            call(("finish", {"summary": "done"})),
            call(("write_file", {"path": "a.txt", "content": f"token {MARKERS['GITHUB_TOKEN']}\n"}),
                 ("bash", {"command": "cat a.txt; exit 3"})),
            call(("finish", {"summary": "done now"}))]


@pytest.fixture
def store(tmp_path, monkeypatch):
    """MLflow in a SQLite file under tmp_path, the secret markers in the environment."""
    monkeypatch.setenv("LIMI_ROOT", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("LIMI_PARENT_RUN_ID", raising=False)
    monkeypatch.delenv("LIMI_TRACES", raising=False)
    for name, value in MARKERS.items():
        monkeypatch.setenv(name, value)
    return tmp_path


def traces_of(run_id: str) -> list:
    """The traces linked to MLflow run ``run_id`` (read back from the store)."""
    import mlflow

    experiment = mlflow.get_run(run_id).info.experiment_id
    return mlflow.search_traces(locations=[experiment], run_id=run_id, return_type="list")


def spans_named(trace, kind: str) -> list:
    return sorted((s for s in trace.data.spans if s.span_type == kind), key=lambda s: s.start_time_ns)


def test_an_episode_becomes_a_trace_with_its_turns_tools_feedback_and_verdicts(store):
    with stage_run("collect", {}, root=store) as run:
        tracer = EpisodeTracer.for_stage(run, "collect")
        assert tracer is not None and run.experiment_id
        tape = tracer.tape()
        session = Harness(SETTINGS).run(QUERY, ScriptedModel(script()), SimulatedUser(), root=store, key="k1",
                                        tape=tape)
        trace_id = tracer.record(tape, session, name="episode", query=QUERY.query,
                                 tags={"limi.task_id": QUERY.id, "limi.teacher": "scripted"})
    assert trace_id and session.last.passed and session.last.rounds_used == 2

    (trace,) = traces_of(run.run_id)
    assert trace.info.trace_id == trace_id
    tags = trace.info.tags
    assert tags["limi.stage"] == "collect" and tags["limi.run_id"] == run.run_id
    assert tags["limi.task_id"] == "hello" and tags["limi.teacher"] == "scripted"
    assert trace.info.trace_metadata["mlflow.sourceRun"] == run.run_id

    messages = session.messages
    assistant = [m for m in messages if m["role"] == "assistant"]
    calls = [c for m in assistant for c in m.get("tool_calls") or []]
    chats = spans_named(trace, "CHAT_MODEL")
    tools = spans_named(trace, "TOOL")
    assert len(chats) == len(assistant) == session.last.steps == 4
    assert [s.name for s in tools] == [c["function"]["name"] for c in calls] == [
        "bash", "finish", "write_file", "bash", "finish"]
    # each model call was shown the conversation up to its turn, and answered with the record's next message
    for span, reply in zip(chats, assistant):
        sent = span.inputs["messages"]
        at = messages.index(reply)
        assert sent == tracer._clean([message_view(m) for m in messages[:at]])
        assert span.outputs["content"] == reply["content"]
        assert span.get_attribute("prompt_tokens") > 0 and span.get_attribute("completion_tokens") > 0
        assert span.get_attribute("cached_tokens") == 0 and span.get_attribute("latency_s") >= 0
    # each tool call's output is the record's tool message; bash's exit status is read off its output
    results = [m["content"] for m in messages if m["role"] == "tool"]
    assert [s.outputs["output"] for s in tools] == tracer._clean([cut(r, 4000) for r in results])
    assert [s.get_attribute("exit_code") for s in tools] == [0, None, None, 3, None]
    assert tools[0].inputs["arguments"]["command"].startswith("echo ")
    verifies = spans_named(trace, "EVALUATOR")
    assert [v.get_attribute("passed") for v in verifies] == [False, True]
    (feedback,) = [s for s in trace.data.spans if s.name == "user feedback"]
    assert feedback.outputs["feedback"] in [m["content"] for m in messages if m["role"] == "user"]
    root = next(s for s in trace.data.spans if s.parent_id is None)
    assert root.name == "episode" and root.inputs == {"query": "Write a.txt."}
    assert all(s.parent_id == root.span_id for s in trace.data.spans if s is not root)

    verdicts = {a.name: a.value for a in trace.info.assessments}
    check = session.last.final.checks[0]
    assert verdicts[check.name] is True and check.name == "test -f a.txt"
    assert verdicts["passed"] is True and verdicts["first_round_passed"] is False and verdicts["score"] == 1.0

    # no secret anywhere: spans, tags, metadata, assessments (the markers were in arguments and outputs)
    text = trace.to_json()
    assert MARKERS["GITHUB_TOKEN"] in json.dumps(messages)  # the record itself saw them
    for value in MARKERS.values():
        assert value not in text
    assert "***" in text


def test_a_trial_has_a_span_per_subtask(store):
    steps = [Step("Write a.txt.", VerifierSpec(kind="tests", commands=["test -f a.txt"])),
             Step("Write b.txt.", VerifierSpec(kind="tests", commands=["test -f b.txt"])),
             Step("Write c.txt.", VerifierSpec(kind="tests", commands=["test -f c.txt"]))]
    finish = call(("finish", {"summary": "done"}))
    model = ScriptedModel([call(("write_file", {"path": "a.txt", "content": "a\n"})), finish, finish, finish])
    with stage_run("eval", {}, root=store) as run:
        tracer = EpisodeTracer.for_stage(run, "eval")
        tape = tracer.tape()
        session = Harness(SETTINGS).run(QUERY, model, SimulatedUser(), root=store, steps=steps, tape=tape)
        tracer.record(tape, session, name="trial", query=steps[0].query, steps=[s.query for s in steps],
                      tags={"limi.task_id": "t", "limi.model": "scripted"})
    (trace,) = traces_of(run.run_id)
    root = next(s for s in trace.data.spans if s.parent_id is None)
    subtasks = sorted((s for s in trace.data.spans if s.parent_id == root.span_id), key=lambda s: s.start_time_ns)
    assert [s.name for s in subtasks] == ["subtask 1", "subtask 2"]  # the third was never reached
    for span, episode in zip(subtasks, session.episodes):
        children = [s for s in trace.data.spans if s.parent_id == span.span_id]
        assert sum(s.span_type == "CHAT_MODEL" for s in children) == episode.steps
        assert sum(s.span_type == "TOOL" for s in children) == episode.tool_calls
        assert span.get_attribute("passed") == episode.passed
    verdicts = {a.name: a.value for a in trace.info.assessments}
    assert verdicts["passed"] is False and verdicts["score"] == 0.0
    assert any(n.startswith("1. ") and v is True for n, v in verdicts.items())
    assert any(n.startswith("2. ") and v is False for n, v in verdicts.items())
    assert trace.info.tags["limi.stage"] == "eval" and trace.info.tags["limi.model"] == "scripted"


def test_the_record_is_the_same_with_and_without_a_tape(store):
    plain = Harness(SETTINGS).run(QUERY, ScriptedModel(script()), SimulatedUser(), root=store, key="same")
    taped = Harness(SETTINGS).run(QUERY, ScriptedModel(script()), SimulatedUser(), root=store, key="same",
                                  tape=EpisodeTape())
    assert json.dumps(plain.messages) == json.dumps(taped.messages)
    assert plain.diff == taped.diff
    assert (plain.meta(SETTINGS, sampling=None, user="simulated")
            == taped.meta(SETTINGS, sampling=None, user="simulated"))


def test_a_failing_store_costs_one_warning_and_no_episode(store, monkeypatch, caplog):
    with stage_run("collect", {}, root=store) as run:
        tracer = EpisodeTracer.for_stage(run, "collect")
        # the store goes away mid-stage: nothing listens on this port
        import mlflow

        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri("http://127.0.0.1:9")
        try:
            sessions = []
            with caplog.at_level(logging.WARNING, logger="pipelines.agent.traces"):
                for _ in range(2):
                    tape = tracer.tape() or EpisodeTape()
                    model = ScriptedModel([call(("write_file", {"path": "a.txt", "content": "a\n"})),
                                           call(("finish", {"summary": "done"}))])
                    session = Harness(SETTINGS).run(QUERY, model, SimulatedUser(), root=store, tape=tape)
                    sessions.append(session)
                    assert tracer.record(tape, session, name="episode", query=QUERY.query, tags={}) is None
        finally:
            mlflow.set_tracking_uri(previous)
    assert all(s.last.passed for s in sessions)
    warnings = [r for r in caplog.records if r.name == "pipelines.agent.traces"]
    assert len(warnings) == 1 and "tracing failed" in warnings[0].getMessage()
    assert not tracer.active


def test_tracing_is_off_without_a_run_or_when_switched_off(store, monkeypatch):
    assert EpisodeTracer.for_stage(None, "collect") is None
    with stage_run("collect", {}, root=store) as run:
        monkeypatch.setenv("LIMI_TRACES", "0")
        assert EpisodeTracer.for_stage(run, "collect") is None
        monkeypatch.setenv("LIMI_TRACES", "1")
        assert EpisodeTracer.for_stage(run, "collect") is not None


def test_a_span_shows_each_message_cut_to_size():
    long = "x" * 10_000
    view = message_view({"role": "assistant", "content": long, "tool_calls": [
        {"id": "call_1_0", "type": "function", "function": {"name": "write_file",
                                                            "arguments": {"path": "a", "content": long}}}]})
    assert len(view["content"]) < 2100 and "characters cut" in view["content"]
    assert len(view["tool_calls"][0]["function"]["arguments"]["content"]) < 2100
    assert view["tool_calls"][0]["function"]["arguments"]["path"] == "a"
    assert cut("short") == "short"
