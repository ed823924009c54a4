"""LIMI's data and recipe: a published-schema set through curate, sft and the token report; the preset; attention."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.core.errors import ParamsError, UserError
from pipelines.core.params import parse_params
from pipelines.curate import curate, input_files
from pipelines.training.config import SFTParams
from pipelines.training.data import encode_sample
from pipelines.training.model import attention, load_model
from pipelines.training.run import run
from tests.training.limi_records import limi_record


def test_a_limi_schema_set_goes_through_curate_and_sft(tmp_path, tokenizer, tiny_model_dir):
    records = [limi_record(i) for i in range(3)]
    (tmp_path / "limi").mkdir()
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "limi" / "train-00000.parquet")  # as a hub folder
    params = parse_params({"curate": {"admit_unverified": True, "target_size": 50, "decontam": {
        "builtin": False, "easy": False, "humaneval": False, "agencybench_dirs": []}}})
    report = curate(params, tmp_path, input_files(["limi"], tmp_path), tmp_path / "sft", None, tokenizer=tokenizer)
    assert report["funnel"]["after_selection"] == 3
    lengths = [len(encode_sample(tokenizer, r)["input_ids"]) for r in records]
    assert [s["tokens"] for s in report["samples"]] == lengths  # the token-length report counts what sft trains on
    assert [s["file"] for s in report["samples"]] == ["limi/train-00000.parquet"] * 3
    kept = [json.loads(line) for line in (tmp_path / "sft" / "train.jsonl").read_text().splitlines()]
    assert [(r["messages"], r["tools"]) for r in kept] == [(r["messages"], r["tools"]) for r in records]

    sft = SFTParams(max_length=4096, repeat=2, epochs=1, learning_rate=1e-3, warmup_ratio=0.0,
                    lora={"r": 4, "alpha": 8})
    metrics = run(tmp_path / "sft" / "train.jsonl", tiny_model_dir, tmp_path / "model", sft,
                  checkpoints=tmp_path / "ckpt", plots=None, metrics_file=None)
    assert metrics["samples"] == 6 and metrics["steps"] == 6  # each sample twice an epoch, one per step
    assert metrics["train_tokens"] == 2 * sum(lengths) and metrics["dropped_for_length"] == 0
    assert (tmp_path / "model" / "adapter_model.safetensors").exists()


def test_the_limi_preset_sets_the_released_recipe_and_explicit_keys_win():
    p = SFTParams(preset="limi")
    assert (p.method, p.learning_rate, p.min_lr_ratio, p.epochs, p.repeat, p.batch_size, p.grad_accum,
            p.max_length, p.loss_reduction, p.attn_implementation) == (
        "full", 1e-5, 0.1, 4, 2, 1, 64, 131072, "token", "auto")
    assert p.batch_size * p.grad_accum * p.num_processes == 64
    assert SFTParams(preset="limi", num_processes=8).grad_accum == 8  # the global batch stays 64
    mine = SFTParams(preset="limi", learning_rate=2e-5, epochs=1, grad_accum=4, method="lora")
    assert (mine.learning_rate, mine.epochs, mine.grad_accum, mine.method, mine.repeat) == (2e-5, 1, 4, "lora", 2)
    assert SFTParams() == SFTParams(preset=None)  # no preset: the defaults
    with pytest.raises(ParamsError, match="sft: .*batch_size x num_processes \\(3\\)"):
        parse_params({"sft": {"preset": "limi", "num_processes": 3}})
    full = {**SFTParams(preset="limi").model_dump(exclude={"lora"}), "preset": "limi"}
    with pytest.raises(ParamsError, match="preset: limi has no effect"):
        parse_params({"sft": full})
    with pytest.raises(ParamsError, match="sft.preset"):
        parse_params({"sft": {"preset": "limo"}})


def test_attention_switch(tmp_path, tiny_model_dir):
    assert attention(SFTParams(attn_implementation="auto")) == "sdpa"  # no flash-attn, no GPU here
    assert load_model(tiny_model_dir, SFTParams(attn_implementation="eager", method="full")) \
        .config._attn_implementation == "eager"
    flash = SFTParams(attn_implementation="flash_attention_2")
    with pytest.raises(UserError, match="^sft.attn_implementation: flash_attention_2 needs the flash-attn package"):
        run(tmp_path / "nowhere.jsonl", tiny_model_dir, tmp_path / "out", flash, checkpoints=tmp_path / "ckpt",
            plots=None, metrics_file=None)  # before the data is even looked for
