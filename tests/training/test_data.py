"""Samples for training: assistant-only labels from the template, length drops, packing that keeps samples apart."""

import copy
import json
import re

import pytest
import torch
from transformers import AutoModelForCausalLM, DataCollatorWithFlattening

from pipelines.core.errors import UserError
from pipelines.training.data import IGNORE, encode_sample, load_training_set
from tests.training.samples import sample


def test_mask_is_exactly_the_assistant_output(tokenizer):
    enc = encode_sample(tokenizer, sample(1))
    kept = [t for t, l in zip(enc["input_ids"], enc["labels"]) if l != IGNORE]
    expected = ('Looking 1.\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls 1"}}\n</tool_call><|im_end|>'
                'There is one file, 1.\n<tool_call>\n{"name": "finish", "arguments": {"summary": "done 1"}}\n'
                '</tool_call><|im_end|>')
    assert tokenizer.decode(kept) == expected
    masked_out = tokenizer.decode([t for t, l in zip(enc["input_ids"], enc["labels"]) if l == IGNORE])
    assert "Task 1" in masked_out and "file1.txt" in masked_out and "Please also count" in masked_out


def test_reasoning_is_trained_only_where_the_template_renders_it(tokenizer):
    """A record's ``reasoning_content`` (a reasoning teacher's) is handed to the template: the project's renders
    it as a ``<think>`` block inside the trained part; a template that does not read it leaves it out."""
    plain = sample(1)
    thought = copy.deepcopy(plain)
    thought["messages"][2]["reasoning_content"] = "I should list first."
    enc = encode_sample(tokenizer, thought)
    kept = tokenizer.decode([t for t, l in zip(enc["input_ids"], enc["labels"]) if l != IGNORE])
    assert kept.startswith("<think>\nI should list first.\n</think>\nLooking 1.\n<tool_call>")
    other = copy.deepcopy(tokenizer)
    other.chat_template, n = re.subn(r"\{%-? if message\.reasoning_content -?%\}.*?\{%-? endif -?%\}", "",
                                     tokenizer.chat_template, flags=re.S)
    assert n == 1 and "reasoning_content" not in other.chat_template
    assert encode_sample(other, thought) == encode_sample(other, plain) == encode_sample(tokenizer, plain)


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
