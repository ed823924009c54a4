"""The loss from the kept logits (assistant targets only) equals the loss over every logit."""

import pytest
import torch
from transformers import AutoModelForCausalLM, DataCollatorWithFlattening

from pipelines.training.data import IGNORE, encode_sample
from pipelines.training.loss import target_loss, target_positions
from tests.training.samples import sample


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
