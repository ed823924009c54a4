"""The curate stage entry: what it writes (deterministic, no run facts), what it records, how it fails."""

import json

import pytest
from transformers import AutoTokenizer

from pipelines.core.errors import UserError
from pipelines.core.params import parse_params
from pipelines.curate import curate
from tests.curation.test_funnel import record, text


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def run(tmp_path, records, tokenizer, tracker=None, **curate_params):
    src = tmp_path / "episodes.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    base = {"decontam": {"builtin": False, "easy": False, "humaneval": True, "agencybench_dirs": []}, "target_size": 50}
    base.update(curate_params)
    params = parse_params({"curate": base})
    report = curate(params, tmp_path, [src], tmp_path / "sft", tmp_path / "metrics.json", tokenizer=tokenizer,
                    tracker=tracker)
    by_task = {s["task_id"]: s for s in report["samples"]}
    kept = [json.loads(l) for l in (tmp_path / "sft" / "train.jsonl").read_text().splitlines()]
    return report, by_task, kept


class FakeRun:
    """Collects what the stage hands to its StageRun."""

    def __init__(self):
        self.metrics, self.timings, self.datasets, self.artifacts = {}, [], [], []

    def log_metrics(self, metrics):
        self.metrics.update(metrics)

    def log_dataset(self, path, context):
        self.datasets.append((path.name, context))

    def log_artifact(self, path):
        self.artifacts.append(path.name)

    def record_timings(self, figures, root=None):
        self.timings.append(figures)


def test_outputs_are_a_function_of_the_inputs_and_timings_go_to_the_run(tmp_path, tokenizer):
    records = [record(f"t{i}", text(300 + i), text(400 + i), category=("algorithm", "research")[i % 2])
               for i in range(6)]
    outputs = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        tracker = FakeRun()
        run(tmp_path / name, records, tokenizer, tracker=tracker, target_size=4)
        outputs.append([(tmp_path / name / rel).read_bytes()
                        for rel in ("sft/train.jsonl", "sft/report.json", "metrics.json")])
    assert outputs[0] == outputs[1]  # byte for byte, though written in other folders at other times
    report = json.loads(outputs[0][1])
    assert {s["file"] for s in report["samples"]} == {"episodes.jsonl"}  # relative to the project root
    assert list(report["kept_by_category"]) == ["algorithm", "research"]
    assert "seconds" not in json.dumps(report) and "seconds" not in outputs[0][2].decode()
    [timings] = tracker.timings
    assert timings["seconds"] >= 0 and set(timings["step_seconds"]) >= {"near_dup", "length", "selection"}
    assert tracker.metrics["kept"] == 4 and tracker.metrics["after_selection"] == 4
    assert tracker.datasets == [("episodes.jsonl", "input"), ("train.jsonl", "output")]
    assert tracker.artifacts == ["report.json"]


def test_a_trajectory_writing_a_hidden_humaneval_test_is_counted_as_hidden_material(tmp_path, tokenizer):
    from pipelines.evaluation.suites.humaneval import load_humaneval

    hidden_test = load_humaneval(limit=1)[0].provenance["test"]
    records = [record("clean", text(500), text(501)),
               record("writes-test", text(502), text(503), arguments={"command": f"cat > t.py <<'X'\n{hidden_test}X"})]
    report, by_task, kept = run(tmp_path, records, tokenizer)
    assert by_task["writes-test"]["reason"] == "hidden_material"
    assert "most with humaneval:HumanEval/0 test" in by_task["writes-test"]["detail"]
    assert [r["meta"]["task_id"] for r in kept] == ["clean"]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["dropped_hidden_material"] == report["funnel"]["dropped_hidden_material"] == 1
    assert metrics["after_decontam"] == 2 and metrics["after_hidden_material"] == 1
    assert report["hidden_material_checked"] > report["eval_tasks_checked"] == 164


def test_all_filtered_input_names_the_step(tmp_path, tokenizer):
    records = [record("f1", text(80), text(81), passed=False), record("f2", text(82), text(83), passed=False)]
    with pytest.raises(UserError, match=r"0 of 2 trajectories left after the 'verified' step"):
        run(tmp_path, records, tokenizer)
    assert json.loads((tmp_path / "sft" / "report.json").read_text())["funnel"]["after_verified"] == 0
    assert not (tmp_path / "sft" / "train.jsonl").exists()


def test_empty_input(tmp_path, tokenizer):
    (tmp_path / "episodes.jsonl").write_text("")
    params = parse_params({})
    with pytest.raises(UserError, match="hold no trajectories"):
        curate(params, tmp_path, [tmp_path / "episodes.jsonl"], tmp_path / "sft", None, tokenizer=tokenizer)
