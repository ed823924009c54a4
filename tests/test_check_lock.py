"""CI's lock check (`.ci/check_lock.py`) on hand-made locks: which differences it lets through and which it
fails on, with the README's two lists and the CPU model that wrote the committed lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO

SCRIPT = REPO / ".ci" / "check_lock.py"
README = ("Stages whose outputs may differ between runs: `eval_shard`, `eval`.\n\n"
          "Stages whose outputs differ on another CPU model: `sft`.\n")


def stage(dep: str = "d1", out: str = "o1", params: int = 1) -> dict:
    return {"cmd": "python -m x", "deps": [{"path": "in", "md5": dep}], "params": {"params.yaml": {"k": params}},
            "outs": [{"path": "out", "md5": out}]}


def check(tmp_path: Path, new: dict, machine: str) -> subprocess.CompletedProcess:
    old = {"curate": stage(), "sft": stage(), "eval_shard@0": stage(), "eval": stage()}
    (tmp_path / "old.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": old}))
    (tmp_path / "new.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {**old, **new}}))
    (tmp_path / "README.md").write_text(README)
    (tmp_path / "machine.txt").write_text(machine + "\n")
    return subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "old.lock"), str(tmp_path / "new.lock"),
                           str(tmp_path / "README.md"), str(tmp_path / "machine.txt")],
                          capture_output=True, text=True, timeout=60)


def here() -> str:
    return subprocess.run([sys.executable, str(SCRIPT), "--machine"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_machine_line_names_vendor_family_and_model():
    line = here()
    assert line.count(" | ") == 3 and "?" not in line.split(" | ")[0]


def test_an_unchanged_lock_and_the_evals_changes_pass(tmp_path):
    result = check(tmp_path, {"eval_shard@0": stage(dep="d2", out="o2"), "eval": stage(out="o3")}, here())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dvc.lock stage eval_shard@0: deps:in, outs:out changed: allowed" in result.stdout


def test_any_other_stage_that_changed_fails(tmp_path):
    result = check(tmp_path, {"curate": stage(out="o2")}, here())
    assert result.returncode == 1 and "curate: outs:out changed: NOT ALLOWED" in result.stdout
    assert "does not reproduce the committed dvc.lock for: curate" in result.stderr


def test_sft_must_write_the_same_bytes_on_the_cpu_model_that_wrote_the_lock(tmp_path):
    result = check(tmp_path, {"sft": stage(out="o2")}, here())
    assert result.returncode == 1 and "the same CPU model wrote the committed lock" in result.stdout


def test_on_another_cpu_model_sft_may_write_other_bytes_from_the_same_inputs(tmp_path):
    other = "GenuineIntel | 6 | 143 | Intel(R) Xeon(R) Platinum 8480+"
    result = check(tmp_path, {"sft": stage(out="o2")}, other)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "outputs not compared on this CPU model: sft" in result.stdout
    changed_inputs = check(tmp_path, {"sft": stage(dep="d2", out="o2")}, other)
    assert changed_inputs.returncode == 1 and "its inputs changed: deps:in" in changed_inputs.stdout
    changed_params = check(tmp_path, {"sft": stage(params=2)}, other)
    assert changed_params.returncode == 1 and "its inputs changed: params" in changed_params.stdout


def test_the_committed_readme_has_both_lists_and_a_recorded_machine():
    text = (REPO / "README.md").read_text()
    assert "Stages whose outputs may differ between runs: `eval_shard`, `eval`." in text
    assert "Stages whose outputs differ on another CPU model: `sft`." in text
    assert (REPO / ".ci" / "lock-machine.txt").read_text().count(" | ") == 3
