"""The episode harness with the scripted backend and the real sandbox: steps in one conversation, the record
fields it builds, and the pool's order."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from pipelines.agent.config import HarnessParams
from pipelines.agent.harness import Harness, pool_size, run_pool, verdict, versions
from pipelines.agent.sandbox.bwrap import BwrapSandbox
from pipelines.agent.users import SimulatedUser
from pipelines.agent.verifiers import Check, VerifierResult
from pipelines.core.schema import Query, TrajectoryMeta, VerifierSpec
from pipelines.llm.scripted import ScriptedModel

SETTINGS = HarnessParams(rounds=2, sandbox="bwrap" if BwrapSandbox.available() else "none")
QUERY = Query(id="hello", source="human", domain="software", category="algorithm", query="Write a.txt.",
              workspace={"files": {"README": "tiny\n"}},
              verifier=VerifierSpec(kind="tests", commands=["test -f a.txt"]))


@dataclass
class Step:
    query: str
    verifier: VerifierSpec


def call(name: str, **arguments) -> dict:
    return {"content": "", "tool_calls": [{"type": "function", "function": {"name": name, "arguments": arguments}}]}


def test_a_query_is_one_step_and_its_session_becomes_record_fields(tmp_path):
    model = ScriptedModel([call("write_file", path="a.txt", content="a\n"), call("finish", summary="done")])
    session = Harness(SETTINGS).run(QUERY, model, SimulatedUser(), root=tmp_path, sampling={"temperature": 0.0})
    assert len(session.episodes) == 1 and session.last.passed and session.seconds > 0
    assert "+a" in session.diff and session.messages[1]["content"] == "Write a.txt."
    assert model.requests[0]["sampling"] == {"temperature": 0.0}
    meta = TrajectoryMeta.model_validate(session.meta(SETTINGS, sampling={"temperature": 0.0}, user="simulated"))
    assert meta.passed and meta.rounds_used == 1 and meta.max_rounds == 2 and meta.steps == 2
    assert meta.final.checks[0].name == "test -f a.txt" and meta.first_round.checks is None
    assert meta.sandbox.kind == SETTINGS.sandbox and meta.versions["pipelines"]
    dumped = meta.model_dump(mode="json", exclude_unset=True)
    assert not {"timings", "seconds", "collected_at"} & set(dumped)


def test_steps_share_one_conversation_and_stop_at_the_first_failure(tmp_path):
    steps = [Step("Write a.txt.", VerifierSpec(kind="tests", commands=["test -f a.txt"])),
             Step("Write b.txt.", VerifierSpec(kind="tests", commands=["test -f b.txt"])),
             Step("Write c.txt.", VerifierSpec(kind="tests", commands=["test -f c.txt"]))]
    finish = call("finish", summary="done")
    model = ScriptedModel([call("write_file", path="a.txt", content="a\n"), finish, finish, finish])
    session = Harness(SETTINGS).run(QUERY, model, SimulatedUser(), root=tmp_path, steps=steps)
    assert [e.passed for e in session.episodes] == [True, False]  # the third step is never reached
    assert session.episodes[1].rounds_used == 2 and session.total("steps") == 4
    users = [m["content"] for m in session.messages if m["role"] == "user"]
    assert users[0] == "Write a.txt." and users[1] == "Write b.txt." and users[2].startswith("Not done yet")


def test_verdict_rounds_the_score_and_cuts_check_output():
    result = VerifierResult("tests", False, 1 / 3, [Check("x" * 300, False, "y" * 900)])
    assert verdict(None) is None
    first = verdict(result)
    assert first.score == 0.3333 and first.checks is None
    final = verdict(result, checks=True)
    assert len(final.checks[0].name) == 200 and len(final.checks[0].output) == 500
    assert versions()["pipelines"] and versions() is not versions()  # a copy: callers may not change the cache


def test_pool_returns_results_in_job_order_and_reports_each_as_it_finishes():
    seen: list[int] = []
    main = threading.get_ident()

    def work(n: int) -> int:
        time.sleep(0.04 * (5 - n))  # later jobs finish first
        return n * n

    def done(n: int, result: int) -> None:
        assert threading.get_ident() == main and result == n * n
        seen.append(n)

    assert run_pool(list(range(5)), work, workers=5, desc="t", unit="j", done=done) == [0, 1, 4, 9, 16]
    assert sorted(seen) == [0, 1, 2, 3, 4] and seen != [0, 1, 2, 3, 4]


def test_pool_stops_on_an_error_without_starting_the_rest():
    started: list[int] = []

    def work(n: int) -> int:
        started.append(n)
        if n == 0:
            raise ValueError("boom")
        time.sleep(0.05)
        return n

    with pytest.raises(ValueError, match="boom"):
        run_pool(list(range(20)), work, workers=2, desc="t", unit="j")
    assert len(started) < 20


def test_pool_size():
    assert pool_size(HarnessParams(parallel=3), 10) == 3
    assert pool_size(HarnessParams(parallel=3), 10, override=5) == 5
    assert pool_size(HarnessParams(parallel=8), 2) == 2
    assert pool_size(HarnessParams(parallel=2), 0) == 1


def test_episode_workspace_is_named_by_the_episode_and_never_shared(tmp_path, monkeypatch):
    import tempfile

    from pipelines.agent.harness import episode_workspace

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    first = episode_workspace("seed-x", "0123456789abcdef")
    assert first == tmp_path / "limi-ws" / "seed-x-0123456789ab" and first.is_dir()
    second = episode_workspace("seed-x", "0123456789abcdef")  # taken: a fresh random sibling, never the same folder
    assert second != first and second.parent == first.parent and second.name.startswith("seed-x-")
