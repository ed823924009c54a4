"""Prompt-lookup drafts, multi-token steps and packed products: the same greedy tokens as ``generate``."""

import pytest
import torch

from pipelines.llm.local import packed
from pipelines.llm.local.attention import rows_attention
from pipelines.llm.local.drafts import PromptLookup


def test_prompt_lookup_drafts_what_followed_the_latest_match():
    lookup = PromptLookup([1, 2, 3, 4, 5, 9, 2, 3, 4, 7, 8, 2, 3])
    assert lookup.draft(3) == [4, 7, 8]  # "2 3" last came before "4 7 8" (the latest, not the first)
    lookup.extend([4])
    assert lookup.draft(2) == [7, 8]  # the 3-gram "2 3 4" now decides
    assert PromptLookup([5, 6, 7]).draft(4) == []  # nothing seen twice
    lookup = PromptLookup([1, 1])
    assert lookup.draft(5) == [1]  # a match right before the end yields what exists after it


def test_rows_attention_matches_repeated_heads():
    """Several tokens per row under per-row masks: the packed query heads give what SDPA over repeated
    key/value heads gives."""
    gen = torch.Generator().manual_seed(0)
    rows, kv_heads, groups, q, width, dim = 3, 2, 3, 4, 17, 8
    query = torch.randn(rows, kv_heads * groups, q, dim, generator=gen)
    key, value = (torch.randn(rows, kv_heads, width, dim, generator=gen) for _ in range(2))
    ends = torch.tensor([9, 13, 12])  # row b's token t sees columns up to ends[b] + t
    mask = (torch.arange(width)[None, None] <= (ends[:, None] + torch.arange(q)[None])[:, :, None])[:, None]
    module = torch.nn.Module()
    module.num_key_value_groups = groups
    out, _ = rows_attention(module, query, key, value, mask, scaling=0.3)
    expected = torch.nn.functional.scaled_dot_product_attention(
        query, key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1), attn_mask=mask, scale=0.3)
    torch.testing.assert_close(out, expected.transpose(1, 2), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not packed.available(), reason="this torch build has no MKL packed GEMM")
def test_packed_products_agree_with_linear_and_each_row_stands_alone():
    gen = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(96, 80), torch.nn.Linear(80, 70, bias=False)).eval()
    x = torch.randn(8, 96, generator=gen)
    plain = model(x)
    linears = packed.PackedLinears(model, rows=8, min_weights=1)
    assert linears.modules == 2 and linears.packed_bytes > 0
    assert torch.equal(model(x), plain)  # inactive: the modules' own products
    plain_two = model(x[:2])
    with torch.inference_mode(), linears.active():
        full = model(x)
        five = model(x[:5])  # padded to 8 rows
        other = model(torch.cat([x[:5], torch.randn(3, 96, generator=gen)]))
        two = model(x[:2])  # under half the rows: the module's own product
    torch.testing.assert_close(full, plain, rtol=1e-5, atol=1e-5)
    assert torch.equal(five, full[:5]) and torch.equal(other[:5], five)
    assert torch.equal(two, plain_two)


def test_draft_steps_match_generate(tiny_model_dir, greedy_alone):
    """Rows with prompt-lookup drafts (and packed products where MKL has them) join and leave a running
    batch; every result equals ``model.generate`` alone, and some drafts were kept."""
    from transformers import AutoModelForCausalLM

    from pipelines.llm.local.batching import GenerationRequest
    from pipelines.llm.local.decoder import BatchDecoder
    from pipelines.llm.local.prefix_cache import PrefixCache

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    eos = model.config.eos_token_id
    gen = torch.Generator().manual_seed(3)

    def alone(prompt, max_new):
        return greedy_alone(model, prompt, max_new, eos)

    # repeated phrases, as in command output an agent reads back
    prompts = [torch.randint(0, 4000, (n,), generator=gen).tolist() * 3 for n in (4, 11, 7, 9)]
    budgets = [40, 25, 33, 18]
    linears = packed.PackedLinears(model, rows=3 * 4, min_weights=1) if packed.available() else None
    decoder = BatchDecoder(model, eos=eos, slots=3, cache=PrefixCache(10**9), packed=linears, draft_tokens=3)
    requests = [GenerationRequest(p, m) for p, m in zip(prompts, budgets)]
    waiting = list(requests)
    while waiting or len(decoder):
        while waiting and len(decoder) < decoder.slots:
            decoder.add(waiting.pop(0))
        decoder.step()
    assert [r.result for r in requests] == [alone(p, m) for p, m in zip(prompts, budgets)]
    assert decoder.drafted > 0 and decoder.accepted > 0  # some steps took more than one token per row

    followup = GenerationRequest(requests[0].ids + requests[0].result + [5, 6, 7], 12)
    decoder.add(followup)
    while len(decoder):
        decoder.step()
    assert followup.cached > 0 and followup.result == alone(followup.ids, 12)
