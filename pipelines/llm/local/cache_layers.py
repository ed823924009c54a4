"""transformers cache layers over preallocated KV buffers, so a forward pass writes states in place.

:class:`BufferLayer` serves one request's prefill into its slot of the batch buffer;
:class:`RowsLayer` serves a decoding step of rows of different lengths side by side.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class BufferLayer(DynamicLayer):
    """A cache layer over a preallocated ``[batch, heads, capacity, head_dim]`` buffer (or a view of one).

    ``update`` writes the new states in place and returns views of the filled part, so a decoding
    step costs no copy of the cache. Writing past the capacity is a bug in the caller.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, filled: int):
        super().__init__()
        self._k, self._v, self._n = keys, values, filled
        self.keys, self.values = keys[:, :, :filled], values[:, :, :filled]
        self.device, self.is_initialized = keys.device, True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        pass  # the buffer exists from the start

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        start, end = self._n, self._n + key_states.shape[-2]
        if end > self._k.shape[-2]:
            raise RuntimeError(f"KV buffer overflow: {end} tokens for a capacity of {self._k.shape[-2]}")
        self._k[:, :, start:end] = key_states
        self._v[:, :, start:end] = value_states
        self._n = end
        self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._n

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("BufferLayer is not cropped; PrefixCache slices stored states instead")


def buffer_cache(keys: list[torch.Tensor], values: list[torch.Tensor], filled: int) -> DynamicCache:
    cache = DynamicCache()
    cache.layers = [BufferLayer(k, v, filled) for k, v in zip(keys, values)]
    return cache


class RowsLayer(DynamicLayer):
    """A cache layer for one decoding step of rows of different lengths in one ``[slots, heads, capacity,
    head_dim]`` buffer: row ``b`` writes the states of its ``q`` new tokens at columns ``positions[b]``
    onwards (its own length) and attends to the columns the caller's mask gives it; columns past a
    row's end hold zeros or stale states, never NaN, so masking them out is exact."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, positions: torch.Tensor, width: int, q: int = 1):
        super().__init__()
        self._k, self._v, self._width, self._q = keys, values, width, q
        self._rows = torch.arange(len(positions), device=keys.device)[:, None]
        self._cols = positions[:, None] + torch.arange(q, device=keys.device)[None]
        self.keys, self.values = keys[:len(positions), :, :width], values[:len(positions), :, :width]
        self.device, self.is_initialized = keys.device, True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        pass

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        self._k[self._rows, :, self._cols] = key_states.transpose(1, 2)
        self._v[self._rows, :, self._cols] = value_states.transpose(1, 2)
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._width - self._q

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("RowsLayer lives for one decoding step")
