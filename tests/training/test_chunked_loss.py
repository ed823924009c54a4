"""The chunked loss equals the unchunked one, gradients included, without ever holding targets x vocab logits."""

import pytest
import torch
from torch.overrides import TorchFunctionMode
from transformers import AutoModelForCausalLM, DataCollatorWithFlattening

from pipelines.core.errors import UserError
from pipelines.training.config import SFTParams
from pipelines.training.data import IGNORE, encode_sample
from pipelines.training.loss import ChunkedTargetLoss, target_loss, target_positions
from pipelines.training.model import load_model
from tests.training.samples import sample


class LogitRows(TorchFunctionMode):
    """The most rows of vocabulary-wide logits any torch function returned while active (backward's recompute
    included)."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab, self.largest = vocab, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.dim() and t.shape[-1] == self.vocab:
                self.largest = max(self.largest, t.numel() // self.vocab)
        return out


def loss_and_grads(model, batch, loss_fn, num_items):
    model.zero_grad(set_to_none=True)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with LogitRows(model.get_output_embeddings().weight.shape[0]) as watch:
        loss = loss_fn(model(**inputs, use_cache=False, logits_to_keep=target_positions(batch["labels"])),
                       batch["labels"], num_items_in_batch=num_items)
        loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), grads, watch.largest


@pytest.mark.parametrize("method", ["full", "lora"])
def test_chunked_loss_gives_the_same_loss_and_gradients(tokenizer, tiny_model_dir, method):
    params = SFTParams(method=method, bf16="false", lora={"r": 4, "alpha": 8})
    batch = DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE)(
        [encode_sample(tokenizer, sample(i, words=5 + 20 * i)) for i in range(3)])
    targets = int((batch["labels"][0, 1:] != IGNORE).sum())
    num_items = targets + 17  # a share of an accumulated batch, as the Trainer passes it
    model = load_model(tiny_model_dir, params).train()
    torch.manual_seed(1)
    for p in model.parameters():  # LoRA's B starts at zero: give every weight a gradient worth comparing
        p.data.add_(0.01 * torch.randn_like(p))
    ref_loss, ref_grads, ref_largest = loss_and_grads(model, batch, target_loss, num_items)
    chunked = ChunkedTargetLoss(model, chunk_tokens=7)
    try:
        loss, grads, largest = loss_and_grads(model, batch, chunked, num_items)
    finally:
        chunked.remove()
    assert targets > 3 * 7 and ref_largest == targets  # the unchunked path holds every target's logits at once
    assert largest == 7  # the chunked one a chunk's
    assert float(loss) == pytest.approx(float(ref_loss), abs=1e-5)
    assert grads.keys() == ref_grads.keys() and len(grads) > 2
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], atol=1e-5, rtol=1e-4, msg=name)
    assert model(**{k: v for k, v in batch.items() if k != "labels"}).logits.shape[1] == batch["input_ids"].shape[1]


def test_chunked_loss_refuses_an_output_layer_under_lora(tiny_model_dir):
    model = load_model(tiny_model_dir, SFTParams(lora={"target_modules": ["q_proj", "lm_head"]}))
    with pytest.raises(UserError, match="^sft.loss_chunk_tokens: .*set sft.loss_chunk_tokens: 0"):
        ChunkedTargetLoss(model, chunk_tokens=16)
