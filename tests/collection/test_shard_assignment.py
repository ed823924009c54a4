"""Sharded collect: which shard runs an episode, the deterministic merge, and shards against one machine."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from pipelines.collection.plan import Job
from pipelines.collection.shards import merge_shards, shard_jobs, shard_of
from pipelines.core.errors import UserError
from pipelines.core.params import params_hash

KEYS = [params_hash({"episode": i}) for i in range(4000)]


def test_shard_of_is_stable_balanced_and_one_shard_takes_everything():
    assert {shard_of(key, 1) for key in KEYS} == {0}
    # a function of the key and the count alone: fixed values, whatever else is planned
    assert [shard_of(k, 4) for k in "abcdefgh"] == [1, 3, 1, 0, 3, 1, 1, 0]
    for shards in (2, 4, 7):
        counts = Counter(shard_of(key, shards) for key in KEYS)
        assert set(counts) == set(range(shards))
        assert max(counts.values()) < 1.15 * len(KEYS) / shards, counts
    # one more shard moves only the episodes the new shard takes
    moved = [k for k in KEYS if shard_of(k, 4) != shard_of(k, 5)]
    assert all(shard_of(k, 5) == 4 for k in moved) and 0.15 < len(moved) / len(KEYS) < 0.25
    jobs = [Job(None, "replay", key) for key in KEYS[:40]]  # type: ignore[arg-type]
    slices = [shard_jobs(jobs, i, 3) for i in range(3)]
    assert sorted(j.key for s in slices for j in s) == sorted(j.key for j in jobs)  # none lost, none twice
    assert all(s == [j for j in jobs if j in s] for s in slices)  # plan order kept
    with pytest.raises(UserError, match="shard 3 is not one of 0..2"):
        shard_jobs(jobs, 3, 3)


def _write_shard(root: Path, shard: int, keys: list[str], *, report: bool = True) -> None:
    folder = root / "data/shards/collect" / str(shard)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "episodes.jsonl").write_text("".join(json.dumps({"meta": {"episode_key": k}, "n": k}) + "\n"
                                                   for k in keys))
    if report:
        (folder / "report.json").write_text(json.dumps({"crashed": [], "not_recorded": [[shard]]}))


def test_merge_puts_records_in_plan_order_and_refuses_foreign_records(tmp_path):
    jobs = [Job(None, "replay", key) for key in KEYS[:30]]  # type: ignore[arg-type]
    by_shard = {i: [j.key for j in shard_jobs(jobs, i, 3)] for i in range(3)}
    for shard, keys in by_shard.items():
        _write_shard(tmp_path, shard, list(reversed(keys[1:])))  # any order in; the first of each missing
    records, reports = merge_shards(jobs, tmp_path, "collect", 3, "episodes.jsonl")
    missing = {keys[0] for keys in by_shard.values()}
    assert [r["meta"]["episode_key"] for r in records] == [j.key for j in jobs if j.key not in missing]
    assert [r["not_recorded"] for r in reports] == [[[0]], [[1]], [[2]]]

    _write_shard(tmp_path, 1, by_shard[1] + by_shard[0][:1])
    with pytest.raises(UserError, match=r"data/shards/collect/1/episodes.jsonl:\d+: .* belongs to shard 0 of 3"):
        merge_shards(jobs, tmp_path, "collect", 3, "episodes.jsonl")
    _write_shard(tmp_path, 1, by_shard[1] + by_shard[1][:1])
    with pytest.raises(UserError, match="recorded twice"):
        merge_shards(jobs, tmp_path, "collect", 3, "episodes.jsonl")
    _write_shard(tmp_path, 1, by_shard[1])
    with pytest.raises(UserError, match="shard 3 of 4 has no output.*stage_deps --write"):
        merge_shards(jobs, tmp_path, "collect", 4, "episodes.jsonl")
    with pytest.raises(UserError, match="not in the current plan"):
        merge_shards(jobs[:-1] if jobs[-1].key in by_shard[2] else jobs[1:], tmp_path, "collect", 3,
                     "episodes.jsonl")


@pytest.mark.needs_bwrap
def test_sharded_collect_merges_to_the_bytes_of_one_unsharded_run(tmp_path, caplog):
    from pipelines.collect import collect, merge
    from pipelines.core.params import load_params
    from tests.test_collect import project, run_collect

    plain = project(tmp_path / "plain", 4)
    assert run_collect(plain).returncode == 0
    sharded = project(tmp_path / "sharded", 4)
    caplog.set_level("INFO", logger="pipelines.collect")

    def shards(n: int) -> list[str]:
        params = yaml.safe_load((sharded / "params.yaml").read_text())
        params["collect"]["shards"] = n
        (sharded / "params.yaml").write_text(yaml.safe_dump(params))
        params = load_params(sharded / "params.yaml")
        logs = []
        for i in range(n):
            caplog.clear()
            collect(params, sharded, sharded / f"data/shards/collect/{i}", shard=i)
            logs.append(caplog.text)
        merge(params, sharded, sharded / "data/trajectories")
        for name in ("episodes.jsonl", "report.json"):
            assert (sharded / "data/trajectories" / name).read_bytes() == (plain / "data/trajectories" / name).read_bytes()
        return logs

    logs = shards(2)
    assert all("episodes planned, 0 already done" in log for log in logs)
    # one shard resumes from its own journal and takes over what the other recorded: nothing reruns
    shutil.rmtree(sharded / "data/trajectories")
    (log,) = shards(1)
    assert "4 episodes planned, 4 already done, 0 to run" in log
    wrong = run_collect(sharded, "--shard", "0", "--of", "3", "--out", "data/shards/collect/0")
    assert wrong.returncode == 2 and "collect.shards is 1 but this stage was generated for 3" in wrong.stderr
