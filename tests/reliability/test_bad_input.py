"""Bad input: each case gets one clear message naming the file and line (or the dotted key), and the
stage that read it leaves no output behind that looks complete.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from pipelines.collect import collect
from pipelines.collection.writer import EPISODES_FILE
from pipelines.curate import curate
from pipelines.core.errors import UserError
from pipelines.evaluation.suites.agencybench import load_agencybench
from pipelines.core.params import load_params
from pipelines.prs.config import PRQueriesParams
from pipelines.prs.filters import filter_reason
from pipelines.prs.dump import read_pr_dump
from pipelines.core.schema import read_queries
from pipelines.training.data import load_training_set
from tests.reliability.test_faults import _trajectory
from tests.test_collect import project as replay_project

bad = pytest.mark.figure("bad_input")
QUERY = {"id": "q1", "source": "human", "domain": "software", "category": "algorithm", "query": "Fix it.",
         "workspace": {"files": {"a.py": "x = 1\n"}}, "verifier": {"kind": "tests", "commands": ["true"]}}


def one_line(message: str) -> str:
    assert "\n" not in message and "Traceback" not in message, message
    return message


def stage_fails(root: Path, out: Path, lines: list[str]) -> str:
    """Run collect on ``lines`` as the query file; returns the error; checks nothing was recorded."""
    (root / "queries.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError) as info:
        collect(load_params(root / "params.yaml"), root, out)
    assert not (out / EPISODES_FILE).exists() and not (out / "report.json").exists()
    return one_line(str(info.value))


@pytest.fixture
def project(tmp_path) -> Path:
    return replay_project(tmp_path, 1)


@bad
def test_malformed_jsonl_line_in_a_query_file(project, tmp_path):
    message = stage_fails(project, tmp_path / "out", [json.dumps(QUERY), '{"id": "q2", "source": '])
    assert "queries.jsonl:2: not valid JSON" in message


@bad
def test_query_with_a_wrong_schema(project, tmp_path):
    broken = {**QUERY, "verifier": {"kind": "tests", "commands": "pytest"}, "source": "human"}
    message = stage_fails(project, tmp_path / "out", [json.dumps({**QUERY, "id": "ok"}), json.dumps(broken)])
    assert "queries.jsonl:2: Query field verifier.commands" in message


@bad
def test_query_workspace_file_escaping_the_workspace(project, tmp_path):
    escaping = {**QUERY, "workspace": {"files": {"../../etc/cron.d/x": "* * * * * root true\n"}}}
    message = stage_fails(project, tmp_path / "out", [json.dumps(escaping)])
    assert "queries.jsonl:1: Query field workspace.files" in message and "relative path inside" in message


@bad
def test_query_workspace_dir_outside_the_repo(project, tmp_path):
    outside = {**QUERY, "workspace": {"dir": "../../../etc"}, "provenance": {"solution_dir": "solutions/q0"}}
    (project / "queries.jsonl").write_text(json.dumps(outside) + "\n")
    out = tmp_path / "out"
    report = collect(load_params(project / "params.yaml"), project, out)
    (failure,) = report["not_recorded"]
    assert "q1" in one_line(failure) and "workspace.dir '../../../etc' points outside the repository" in failure
    episodes = out / EPISODES_FILE
    assert report["episodes"] == 0 and (not episodes.exists() or episodes.read_text() == "")


@bad
def test_malformed_trajectory_line_stops_curate_before_writing(tmp_path):
    traj = tmp_path / "episodes.jsonl"
    traj.write_text(json.dumps(_trajectory(0)) + "\n" + json.dumps(_trajectory(1))[:-20] + "\n")
    out = tmp_path / "sft"
    with pytest.raises(UserError) as info:
        curate(load_params(Path(__file__).resolve().parents[2] / "params.yaml"), tmp_path, [traj], out, None)
    assert f"{traj}:2: not valid JSON" in one_line(str(info.value))
    assert not out.exists()


@bad
def test_training_file_record_with_a_wrong_schema(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps(_trajectory(0)) + "\n" + json.dumps({"conversation": []}) + "\n")
    with pytest.raises(UserError) as info:
        load_training_set(data, AutoTokenizer.from_pretrained(tiny_model_dir), max_length=4096)
    assert f"{data}:2: not a trajectory record (no 'messages')" in one_line(str(info.value))


def _pr(number: int, patch: str, path: str = "src/app.py") -> dict:
    sha = "a" * 40
    return {"number": number, "title": f"Fix {number}", "body": "", "merged_at": "2025-01-02T00:00:00Z",
            "created_at": "2025-01-01T00:00:00Z", "user": {"login": "dev"}, "html_url": f"https://github.com/o/r/pull/{number}",
            "base": {"sha": sha, "repo": {"full_name": "o/r"}}, "head": {"sha": "b" * 40},
            "files": [{"filename": path, "status": "modified", "additions": 1, "deletions": 1, "patch": patch}]}


@bad
def test_pr_dump_with_invalid_utf8(tmp_path):
    dump = tmp_path / "prs.jsonl"
    good = json.dumps(_pr(1, "@@ -1 +1 @@\n-a\n+b\n")).encode()
    broken = json.dumps(_pr(2, "@@ -1 +1 @@\n-a\n+PLACEHOLDER\n")).encode().replace(b"PLACEHOLDER", b"\xff\xfe\x80")
    dump.write_bytes(good + b"\n" + broken + b"\n")
    with pytest.raises(UserError) as info:
        list(read_pr_dump(str(dump)))
    assert f"{dump}:2: not valid JSON" in one_line(str(info.value))


@bad
def test_pr_patch_with_binary_data_is_filtered(tmp_path):
    dump = tmp_path / "prs.jsonl"
    dump.write_text(json.dumps(_pr(3, "@@ -1 +1 @@\n-\u0000\u0001PNG\n+\u0000\u0002PNG\n", path="logo.png")) + "\n"
                    + json.dumps(_pr(4, "GIT binary patch\nliteral 12\nTcmZ?l\n")) + "\n")
    prs = list(read_pr_dump(str(dump)))
    reasons = [filter_reason(pr, PRQueriesParams(), Counter()) for pr in prs]
    assert reasons == ["binary or empty change", "binary or empty change"]


@bad
def test_fifty_megabyte_pr_diff(tmp_path):
    patch = "@@ -1,1 +1,1 @@\n" + "".join(f"+line {i} {'x' * 40}\n" for i in range(1_000_000))
    dump = tmp_path / "prs.jsonl"
    dump.write_text(json.dumps(_pr(5, patch)) + "\n")
    assert dump.stat().st_size > 50_000_000
    started = time.monotonic()
    (pr,) = read_pr_dump(str(dump))
    assert filter_reason(pr, PRQueriesParams(), Counter()) == "patch over the token budget"
    assert time.monotonic() - started < 60


@bad
def test_params_with_wrong_types_and_unknown_keys(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("collect:\n  parallel: many\n  paralel: 2\nsft:\n  lora: {r: 8, alpah: 16}\n")
    with pytest.raises(UserError) as info:
        load_params(params)
    message = str(info.value)
    lines = message.splitlines()
    assert all(line.startswith(f"{params}: ") for line in lines) and len(lines) == 3
    assert "collect.parallel: Input should be a valid integer" in message and "'many'" in message
    assert "collect.paralel: unknown key" in message and "sft.lora.alpah: unknown key" in message


@bad
def test_unreadable_model_directory(tmp_path, tiny_model_dir):
    from pipelines.training.config import SFTParams
    from pipelines.training.run import run as run_sft

    broken = tmp_path / "broken"
    broken.mkdir()
    for item in tiny_model_dir.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / "config.json").write_text('{"model_type": "llama", ')  # cut off mid-write
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps(_trajectory(0)) + "\n")
    messages = []
    for base in (tmp_path / "nowhere", broken):
        out = tmp_path / f"out-{base.name}"
        with pytest.raises(UserError) as info:
            run_sft(data, base, out, SFTParams(), checkpoints=tmp_path / "ckpt", plots=None, metrics_file=None)
        messages.append(one_line(str(info.value)))
        assert not out.exists()
    assert "nowhere: model directory not found" in messages[0]
    assert "config.json" in messages[1] and str(broken) in messages[1]


@bad
def test_agencybench_file_with_missing_fields(tmp_path):
    suite = tmp_path / "agencybench"
    (suite / "task1").mkdir(parents=True)
    (suite / "task1" / "task1.json").write_text(json.dumps({"query": "Subtask 1: build it", "metadata": {}}))
    (suite / "task2").mkdir()
    (suite / "task2" / "task2.json").write_text(json.dumps({"metadata": {"category": "code"}}))
    with pytest.raises(UserError) as info:
        load_agencybench(suite)
    message = one_line(str(info.value))
    assert "task2.json" in message and "field query is missing" in message


@bad
def test_duplicate_query_ids(tmp_path):
    path = tmp_path / "queries.jsonl"
    path.write_text(json.dumps(QUERY) + "\n" + json.dumps(QUERY) + "\n")
    with pytest.raises(UserError, match=r"queries.jsonl:2: duplicate query id 'q1' \(first at line 1\)"):
        read_queries(path)


@bad
def test_torn_line_in_the_middle_of_the_episodes_file(project, tmp_path):
    out = tmp_path / "out"
    collect(load_params(project / "params.yaml"), project, out)
    episodes = out / EPISODES_FILE
    record = episodes.read_text()
    episodes.write_text(record[:100] + "\n" + record)  # damage that is not a kill's torn tail
    with pytest.raises(UserError) as info:
        collect(load_params(project / "params.yaml"), project, out)
    assert f"{episodes}:1: corrupt trajectory record" in one_line(str(info.value))
    assert episodes.read_text() == record[:100] + "\n" + record  # left as found, for a person to look at
