"""Multi-token steps through rows_attention: the same attention as SDPA over repeated key/value heads."""

import torch

from pipelines.llm.local.attention import rows_attention


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
