"""SFT on a tiny randomly initialised Llama with the real tokenizer and chat template."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorWithFlattening

from pipelines.core.errors import UserError
from pipelines.core.params import SFTParams
from pipelines.sft import IGNORE, encode_sample, load_training_set, target_loss, target_positions, train
from tests.conftest import REPO


def sample(i: int, words: int = 30) -> dict:
    filler = " ".join(f"w{i}_{k}" for k in range(words))
    return {"messages": [
        {"role": "system", "content": "You are an agent."},
        {"role": "user", "content": f"Task {i}: {filler}"},
        {"role": "assistant", "content": f"Looking {i}.", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "bash", "arguments": {"command": f"ls {i}"}}}]},
        {"role": "tool", "tool_call_id": "a", "content": f"file{i}.txt " + filler},
        {"role": "user", "content": "Please also count them."},
        {"role": "assistant", "content": f"There is one file, {i}.", "tool_calls": [
            {"id": "b", "type": "function", "function": {"name": "finish", "arguments": {"summary": f"done {i}"}}}]},
        {"role": "tool", "tool_call_id": "b", "content": "finished"}],
        "tools": [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}]}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_mask_is_exactly_the_assistant_output(tokenizer):
    enc = encode_sample(tokenizer, sample(1))
    kept = [t for t, l in zip(enc["input_ids"], enc["labels"]) if l != IGNORE]
    expected = ('Looking 1.\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls 1"}}\n</tool_call><|im_end|>'
                'There is one file, 1.\n<tool_call>\n{"name": "finish", "arguments": {"summary": "done 1"}}\n'
                '</tool_call><|im_end|>')
    assert tokenizer.decode(kept) == expected
    masked_out = tokenizer.decode([t for t, l in zip(enc["input_ids"], enc["labels"]) if l == IGNORE])
    assert "Task 1" in masked_out and "file1.txt" in masked_out and "Please also count" in masked_out


def test_over_long_sample_is_dropped_with_a_message(tmp_path, tokenizer, caplog):
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps(sample(1, words=10)) + "\n" + json.dumps(sample(2, words=400)) + "\n")
    samples, dropped = load_training_set(data, tokenizer, max_length=1000)
    assert len(samples) == 1 and len(dropped) == 1
    assert "train.jsonl:2" in dropped[0] and "dropped, not truncated" in dropped[0] and "max_length 1000" in caplog.text
    with pytest.raises(UserError, match="no trainable samples"):
        load_training_set(data, tokenizer, max_length=50)


def _per_sample_losses(model, batch, lengths):
    logits = model(**batch, use_cache=False).logits[0]
    labels = batch["labels"][0]
    token_loss = torch.nn.functional.cross_entropy(logits[:-1], labels[1:], ignore_index=IGNORE, reduction="none")
    out, start = [], 0
    for n in lengths:
        seg, lab = token_loss[start:start + n - 1], labels[start + 1:start + n]
        out.append(float(seg[lab != IGNORE].mean()))
        start += n
    return out


def test_packing_gives_the_same_per_sample_loss_as_one_by_one(tokenizer, tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    encs = [encode_sample(tokenizer, sample(i, words=5 + 20 * i)) for i in range(3)]
    collate = DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE)
    with torch.no_grad():
        alone = [_per_sample_losses(model, collate([e]), [len(e["input_ids"])])[0] for e in encs]
        packed_batch = collate(encs)
        packed = _per_sample_losses(model, packed_batch, [len(e["input_ids"]) for e in encs])
        del packed_batch["position_ids"]  # the same tokens without the packing signal attend across samples
        leaky = _per_sample_losses(model, packed_batch, [len(e["input_ids"]) for e in encs])
    assert packed == pytest.approx(alone, abs=1e-4)
    assert leaky[1:] != pytest.approx(alone[1:], abs=1e-3)  # the check above can fail


def test_loss_on_the_kept_logits_equals_the_full_loss(tokenizer, tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    batch = DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE)(
        [encode_sample(tokenizer, sample(i, words=5 + 20 * i)) for i in range(3)])
    with torch.no_grad():
        full = model(**batch, use_cache=False).loss  # transformers' own shifted, per-token loss on every logit
        labels = batch.pop("labels")
        kept = model(**batch, use_cache=False, logits_to_keep=target_positions(labels))
    assert kept.logits.shape[1] == int((labels[0, 1:] != IGNORE).sum()) < labels.shape[1] // 2
    assert float(target_loss(kept, labels)) == pytest.approx(float(full), abs=1e-5)


def test_a_few_steps_lower_the_loss(tmp_path, tokenizer, tiny_model_dir):
    samples = [encode_sample(tokenizer, sample(i)) for i in range(2)]
    params = SFTParams(method="full", max_steps=12, learning_rate=3e-3, warmup_ratio=0.0, save_steps=100, batch_size=2)
    metrics = train(samples, tiny_model_dir, tmp_path / "out", params, checkpoints=tmp_path / "ckpt",
                    plots=tmp_path / "plots")
    rows = (tmp_path / "plots" / "loss.csv").read_text().splitlines()
    losses = [float(r.split(",")[1]) for r in rows[1:]]
    assert len(losses) == 12 and losses[-1] < 0.85 * losses[0] and losses[-1] == min(losses)
    assert metrics["train_tokens"] == 12 * sum(len(s["input_ids"]) for s in samples)
    assert (tmp_path / "out" / "model.safetensors").exists() and (tmp_path / "plots" / "loss.png").exists()


def _standalone(root: Path, out: Path, data: Path, base: Path):
    env = {**os.environ, "LIMI_ROOT": str(root), "PYTHONPATH": str(REPO), "CI": "1"}
    return [sys.executable, "-m", "pipelines.sft", "--data", str(data), "--base", str(base), "--out", str(out)], env


@pytest.mark.slow  # two trainings and a kill: over a minute on 2 cores
def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path, tokenizer, tiny_model_dir):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "params.yaml").write_text(
        "sft: {method: lora, lora: {r: 8, alpha: 16}, max_steps: 8, save_steps: 2, batch_size: 1, "
        "learning_rate: 1.0e-3, warmup_ratio: 0.0}\n")
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps(sample(i, words=300)) + "\n" for i in range(4)))
    cmd, env = _standalone(root, root / "full", data, tiny_model_dir)
    subprocess.run(cmd, env=env, cwd=root, check=True, capture_output=True)
    reference = json.loads((root / "full" / "metrics.json").read_text())

    cmd, env = _standalone(root, root / "killed", data, tiny_model_dir)
    proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = root / ".killed.checkpoints"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (checkpoints / "checkpoint-4").exists():
        if proc.poll() is not None:
            pytest.fail("the run ended before it could be killed")
        time.sleep(0.01)
    time.sleep(0.3)  # let the checkpoint finish writing; the kill lands in steps 5-8
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (root / "killed" / "metrics.json").exists()
    subprocess.run(cmd, env=env, cwd=root, check=True, capture_output=True)
    resumed = json.loads((root / "killed" / "metrics.json").read_text())
    assert resumed["resumed_from"] and "checkpoint-" in resumed["resumed_from"]
    assert resumed["steps"] == reference["steps"] == 8
    assert resumed["final_loss"] == pytest.approx(reference["final_loss"], rel=1e-3)
