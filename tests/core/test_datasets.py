"""Datasets from JSONL, Parquet, Arrow and the hub: the same records, so the same tokens, from every form."""

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from transformers import AutoTokenizer

from pipelines.core.datasets import DataSource, read_records, resolve_sources
from pipelines.core.errors import UserError
from pipelines.tools.export import hub_row, write_parquet
from pipelines.training.data import encode_sample, load_training_set
from tests.conftest import REPO
from tests.training.limi_records import limi_record


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _records(n=3):
    return [limi_record(i) for i in range(n)]


def _jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _ids(tokenizer, records):
    return [encode_sample(tokenizer, r)["input_ids"] for r in records]


def test_naive_parquet_and_hub_form_render_the_same_tokens_as_jsonl(tmp_path, tokenizer):
    records = _records()
    jsonl = [r for _, _, r in read_records(_jsonl(tmp_path / "limi.jsonl", records))]
    naive = tmp_path / "naive.parquet"  # arguments and tools as objects: Arrow merges their keys per column
    pq.write_table(pa.Table.from_pylist(records), naive)
    raw = pq.read_table(naive).to_pylist()
    assert raw[0]["messages"][2]["tool_calls"][0]["function"]["arguments"]["command"] is None  # the merge is there
    assert _ids(tokenizer, raw) != _ids(tokenizer, records)  # read as Arrow gives it, the text changes
    hub = tmp_path / "hub.parquet"  # what `limi export hub` writes: arguments and tools as JSON strings
    write_parquet([hub_row({**r, "meta": {"task_id": f"limi-{i}"}}) for i, r in enumerate(records)], hub)

    expected = _ids(tokenizer, jsonl)
    for table in (naive, hub):
        restored = [r for _, _, r in read_records(table)]
        assert [r["messages"] for r in restored] == [r["messages"] for r in records]
        assert [r["tools"] for r in restored] == [r["tools"] for r in records]
        assert _ids(tokenizer, restored) == expected
    assert [r["meta"] for _, _, r in read_records(hub)] == [{"task_id": f"limi-{i}"} for i in range(3)]
    samples, _ = load_training_set(DataSource(path=naive), tokenizer, max_length=100_000)
    assert [s["input_ids"] for s in samples] == expected


def test_a_folder_of_arrow_parquet_and_jsonl_files_reads_in_name_order(tmp_path, tokenizer):
    from datasets import Dataset

    records = _records(4)
    Dataset.from_list(records[:2]).save_to_disk(str(tmp_path / "saved"))  # datasets' own Arrow folder
    folder = tmp_path / "mixed"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(records[2:3]), folder / "a.parquet")
    _jsonl(folder / "b.jsonl", records[3:])
    (folder / "notes.txt").write_text("not data")
    sources = resolve_sources(["saved", "mixed"], tmp_path)
    assert [s.path.name for s in sources][1:] == ["a.parquet", "b.jsonl"]
    read = [(name.rsplit("/", 1)[-1], where, r) for s in sources for name, where, r in read_records(s)]
    assert [(name, where) for name, where, _ in read][2:] == [("a.parquet", 1), ("b.jsonl", 1)]
    assert _ids(tokenizer, [r for _, _, r in read]) == _ids(tokenizer, records)


def test_paths_and_hub_ids_are_told_apart(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.jsonl").write_text("")
    got = resolve_sources(["data/x.jsonl", "GAIR/LIMI", "hf:org/set:test", "data/missing.jsonl", "a/b/c"], tmp_path)
    assert got == [DataSource(path=tmp_path / "data" / "x.jsonl"), DataSource(hub_id="GAIR/LIMI"),
                   DataSource(hub_id="org/set", split="test"), DataSource(path=tmp_path / "data" / "missing.jsonl"),
                   DataSource(path=tmp_path / "a" / "b" / "c")]
    with pytest.raises(UserError, match="missing.jsonl: file not found"):
        list(read_records(got[3]))
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(UserError, match="bad.parquet: not a readable parquet table"):
        list(read_records(tmp_path / "bad.parquet"))


def test_an_unreachable_hub_is_one_line_naming_the_id(tmp_path, tiny_model_dir):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_OFFLINE": "1",
           "HF_ENDPOINT": "http://127.0.0.1:9", "LIMI_ROOT": str(tmp_path), "PYTHONPATH": str(REPO), "CI": "1"}
    result = subprocess.run([sys.executable, "-m", "pipelines.sft", "--data", "no-such-org/limi-set", "--base",
                             str(tiny_model_dir), "--out", str(tmp_path / "out")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "no-such-org/limi-set" in error[0] and "Hugging Face dataset" in error[0], result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
