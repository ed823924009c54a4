"""The attention function for decoding steps of several tokens per row, registered with transformers.

Importing this module registers :func:`rows_attention` under ``ROWS_ATTENTION`` with transformers'
``AttentionInterface``; :func:`swapped_attention` routes a model's forward pass through it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

ROWS_ATTENTION = "limi_rows_sdpa"


def rows_attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                   attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                   **kwargs: Any):
    """SDPA for a step of several tokens per row under a ``[rows, 1, q, width]`` mask, on the key/value heads.

    transformers' SDPA path repeats the keys and values for every query head when a step has more
    than one query token and a mask (it only packs the query heads of one token), which copies the
    whole cache three times per layer for SmolLM2. Here the ``q`` tokens of the query heads sharing
    a key/value head become ``groups * q`` queries of that head, each under its own token's mask
    row, so the cache is read once, as in a one-token step. One-token steps go to transformers' own
    SDPA function unchanged.
    """
    groups = getattr(module, "num_key_value_groups", 1)
    rows, heads, q, dim = query.shape
    if q == 1 or groups == 1 or attention_mask is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    packed = query.reshape(rows, heads // groups, groups * q, dim)  # head h = kv * groups + r -> query r * q + t
    out = torch.nn.functional.scaled_dot_product_attention(
        packed, key, value, attn_mask=attention_mask.repeat(1, 1, groups, 1), dropout_p=0.0, scale=scaling)
    return out.reshape(rows, heads, q, dim).transpose(1, 2).contiguous(), None


AttentionInterface.register(ROWS_ATTENTION, rows_attention)


@contextmanager
def swapped_attention(config, name: str) -> Iterator[None]:
    """Inside the block, every layer sharing ``config`` attends through the registered function ``name``."""
    before = config._attn_implementation
    config._attn_implementation = name
    try:
        yield
    finally:
        config._attn_implementation = before
