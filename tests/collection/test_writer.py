"""The episodes file: resume after a kill, records of earlier versions cleaned, a stable order at the end."""

from __future__ import annotations

import json

from pipelines.collection.writer import TrajectoryWriter


def record(key: str, **meta) -> dict:
    return {"messages": [{"role": "user", "content": key}], "tools": [], "meta": {"episode_key": key, **meta}}


def test_sort_writes_the_records_in_plan_order(tmp_path):
    path = tmp_path / "episodes.jsonl"
    writer = TrajectoryWriter(path, {"a", "b", "c"})
    for key in ("c", "a"):  # the order episodes happened to finish in
        writer.append(record(key))
    kept = writer.sort(["a", "b", "c"])
    assert [r["meta"]["episode_key"] for r in kept] == ["a", "c"]
    assert [json.loads(line)["meta"]["episode_key"] for line in path.read_text().splitlines()] == ["a", "c"]
    before = path.stat().st_mtime_ns
    writer.sort(["a", "b", "c"])  # already in order: the file is left as it is
    assert path.stat().st_mtime_ns == before
    TrajectoryWriter(tmp_path / "none.jsonl", set()).sort(["a"])
    assert not (tmp_path / "none.jsonl").exists()


def test_open_drops_stale_torn_and_run_dependent_parts(tmp_path):
    path = tmp_path / "episodes.jsonl"
    old = record("a", timings={"episode_s": 1.5}, collected_at="2024-01-01T00:00:00+00:00", passed=True)
    path.write_text(json.dumps(old) + "\n" + json.dumps(record("gone")) + "\n" + '{"messages": [')
    writer = TrajectoryWriter(path, {"a", "b"})
    assert list(writer.done) == ["a"] and writer.done["a"]["meta"] == {"episode_key": "a", "passed": True}
    assert [json.loads(line) for line in path.read_text().splitlines()] == [writer.done["a"]]
