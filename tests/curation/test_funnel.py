"""The curate funnel (pipelines.curation.funnel) on records built by the test, with the real tokenizer and template."""

import json
import random

import pytest
from transformers import AutoTokenizer

from pipelines.core.params import parse_params
from pipelines.curation.decontam import EvalIndex, HiddenIndex, eval_texts, hidden_material
from pipelines.curation.funnel import alive, funnel_report, load_samples, run_funnel

WORDS = ("parse merge queue cache index vector stream buffer token graph route table schema "
         "record filter batch window shard commit branch socket thread lock retry").split()


def text(seed: int, n: int = 60) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n))


def record(task_id: str, query: str, diff: str, *, category="algorithm", domain="software", passed=True,
           score=1.0, rounds=1, teacher="replay", arguments=None, body=""):
    arguments = arguments if arguments is not None else {"command": "ls"}
    return {
        "messages": [
            {"role": "system", "content": "sys"}, {"role": "user", "content": query},
            {"role": "assistant", "content": body, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "c2", "type": "function", "function": {"name": "finish", "arguments": {"summary": "done"}}}]},
            {"role": "tool", "tool_call_id": "c2", "content": "finished"}],
        "tools": [],
        "meta": {"task_id": task_id, "query": query, "final_diff": diff, "category": category, "domain": domain,
                 "passed": passed, "final": {"score": score}, "rounds_used": rounds, "teacher": teacher,
                 "termination": "finished"},
    }


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def run(tmp_path, records, tokenizer, **curate_params):
    """The funnel over ``records`` (written to a file first): the report, its samples by task id, the kept records."""
    src = tmp_path / "episodes.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    base = {"decontam": {"builtin": False, "easy": False, "humaneval": True, "agencybench_dirs": []}, "target_size": 50}
    base.update(curate_params)
    params = parse_params({"curate": base}).curate
    samples = load_samples([src], tmp_path)
    evals = EvalIndex(eval_texts(params.decontam, tmp_path), params.decontam.ngram, params.decontam.min_matches)
    hidden = HiddenIndex(hidden_material(params.decontam, tmp_path), params.decontam.ngram)
    funnel, _ = run_funnel(samples, params, evals, tokenizer, hidden)
    report = funnel_report(samples, funnel, len(evals), len(hidden))
    by_task = {s["task_id"]: s for s in report["samples"]}
    return report, by_task, [s.record for s in alive(samples)]


def test_exact_and_near_duplicates_keep_one_each(tmp_path, tokenizer):
    base_q, base_d = text(1), text(2, 200)
    words = base_d.split()
    words[10] = "zebra"  # one word changed in 200: a near duplicate
    records = [
        record("a", base_q, base_d, score=1.0),
        record("a-copy", base_q.upper() + "  ", base_d, score=1.0, rounds=2),  # exact after folding
        record("a-near", base_q, " ".join(words), score=0.9),
        record("b", text(3), text(4, 200)),
    ]
    report, by_task, kept = run(tmp_path, records, tokenizer)
    assert by_task["a-copy"]["reason"] == "exact_dup" and by_task["a-near"]["reason"] == "near_dup"
    assert {r["meta"]["task_id"] for r in kept} == {"a", "b"}
    assert report["funnel"]["dropped_exact_dup"] == 1 and report["funnel"]["dropped_near_dup"] == 1
    assert report["funnel"]["after_exact_dup"] == 3 and report["funnel"]["after_near_dup"] == 2


def test_over_long_sample_is_dropped_with_its_token_count(tmp_path, tokenizer):
    records = [record("short", text(8), text(9)), record("long", text(10), text(11), body=text(12, 3000))]
    _, by_task, kept = run(tmp_path, records, tokenizer, max_length=1500)
    assert by_task["long"]["reason"] == "length"
    assert int(by_task["long"]["detail"].split()[0]) > 1500 and by_task["long"]["tokens"] > 1500
    assert [r["meta"]["task_id"] for r in kept] == ["short"]


def test_type_inconsistent_tool_argument_is_dropped(tmp_path, tokenizer):
    records = [record(f"ok{i}", text(20 + i), text(40 + i)) for i in range(3)]
    records.append(record("odd", text(60), text(61), arguments={"command": ["ls", "-la"]}))
    _, by_task, _ = run(tmp_path, records, tokenizer)
    assert by_task["odd"]["reason"] == "tool_types" and "bash.command is array" in by_task["odd"]["detail"]


def test_unverified_and_schema_failures(tmp_path, tokenizer):
    bad = record("bad", text(70), text(71))
    bad["messages"] = [{"role": "narrator", "content": "x"}]
    records = [record("good", text(72), text(73)), record("failed", text(74), text(75), passed=False), bad]
    _, by_task, _ = run(tmp_path, records, tokenizer)
    assert by_task["failed"]["reason"] == "verified" and by_task["bad"]["reason"] == "schema"
    assert "episodes.jsonl:3" in by_task["bad"]["detail"]


def test_selection_is_stratified_and_deterministic(tmp_path, tokenizer):
    records = []
    for cat, n in (("algorithm", 6), ("research", 6), ("data_analysis", 2)):
        dom = "software" if cat == "algorithm" else "research"
        records += [record(f"{cat}{i}", text(hash((cat, i)) % 10_000), text(hash((cat, i, 1)) % 10_000),
                           category=cat, domain=dom, score=1.0, rounds=1 + i % 3) for i in range(n)]
    _, _, kept1 = run(tmp_path, records, tokenizer, target_size=6)
    _, _, kept2 = run(tmp_path, records, tokenizer, target_size=6)
    ids = [r["meta"]["task_id"] for r in kept1]
    assert ids == [r["meta"]["task_id"] for r in kept2]
    counts = {c: sum(r["meta"]["category"] == c for r in kept1) for c in ("algorithm", "research", "data_analysis")}
    assert counts == {"algorithm": 2, "research": 2, "data_analysis": 2}
    assert {"algorithm0", "research0"} <= set(ids)  # first-round solutions rank first in their stratum


def test_a_record_with_a_bad_meta_or_no_object_is_dropped_naming_its_line(tmp_path, tokenizer):
    bad_meta = record("bad-meta", text(76), text(77))
    bad_meta["meta"]["passed"] = "maybe"
    src = tmp_path / "episodes.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in (record("good", text(78), text(79)), bad_meta, [1, 2])))
    samples = load_samples([src], tmp_path)
    good, meta_row, list_row = samples
    assert good.status == "kept" and good.meta.passed and good.messages[1].content == text(78)
    assert meta_row.reason == "schema" and meta_row.detail.startswith("episodes.jsonl:2: meta.passed:")
    assert meta_row.task_id == "bad-meta" and meta_row.teacher == "replay"  # what of its meta is valid still shows
    assert list_row.reason == "schema" and list_row.detail.startswith("episodes.jsonl:3: (record):")
    assert list_row.task_id is None


def test_report_shows_what_the_record_states_and_unrecorded_rounds_rank_last(tmp_path, tokenizer):
    bare = record("bare", text(84), text(85))
    del bare["meta"]["teacher"], bare["meta"]["rounds_used"]
    no_category = record("no-category", text(88), text(89))
    del no_category["meta"]["category"]
    records = [bare, record("slow", text(86), text(87), rounds=3), no_category]
    report, by_task, kept = run(tmp_path, records, tokenizer, target_size=2)  # one per (domain, category)
    assert by_task["bare"]["teacher"] is None and by_task["no-category"]["category"] is None  # not the default ""
    assert by_task["bare"]["reason"] == "selection"  # the same stratum as "slow", whose 3 rounds rank first
    assert {r["meta"]["task_id"] for r in kept} == {"slow", "no-category"}
    assert report["kept_by_category"] == {None: 1, "algorithm": 1}
    assert kept[0] == records[1]  # train records are written back as read
