"""Greedy decoding for concurrent episodes with KV caches kept across turns.

An agent episode asks the model many times over a growing history: the prompt of turn k+1 starts
with the prompt and answer of turn k. :class:`PrefixCache` keeps the keys and values of recent
sequences (bounded in bytes, least recently used evicted first); a new request looks up the entry
sharing the longest token prefix with it and only encodes the rest. The match is on tokens, not on
episode ids, so a re-rendered history that differs from the generated text (a tool call's JSON laid
out by the template) still reuses everything up to the first differing token, and episodes that
share a system prompt and tool list share that too.

:func:`greedy_generate` prefills each request on top of its cached prefix, then decodes all of them
as one left-padded batch written into preallocated buffers (no per-step concatenation of the whole
cache), each row stopping at its own end of turn. It is a plain argmax loop because the local
backend's generation config has no logits processors for greedy decoding; the stop rules are
transformers' own (end-of-turn token, ``max_new_tokens``, ``StopStringCriteria``), so a row ends
where ``model.generate`` would have ended it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values of shape [1, heads, tokens, head_dim]


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


def supported(config) -> bool:
    """Whether :func:`greedy_generate` can drive this model: a decoder whose every layer is full attention."""
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    if getattr(text, "is_encoder_decoder", False) or not hasattr(text, "num_hidden_layers"):
        return False
    return all(t == "full_attention" for t in (getattr(text, "layer_types", None) or ["full_attention"]))


def buffer_cache(keys: list[torch.Tensor], values: list[torch.Tensor], filled: int) -> DynamicCache:
    cache = DynamicCache()
    cache.layers = [BufferLayer(k, v, filled) for k, v in zip(keys, values)]
    return cache


@dataclass
class _Entry:
    ids: torch.Tensor  # 1-D long
    kv: KV
    nbytes: int


class PrefixCache:
    """Token sequences with their KV states, least recently used evicted beyond ``budget_bytes``."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._next = 0
        self.nbytes = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, ids: torch.Tensor) -> tuple[KV | None, int]:
        """The cached states sharing the longest prefix with ``ids``, and that prefix's length."""
        best_key, best_n = None, 0
        for key, entry in self._entries.items():
            n = common_prefix(entry.ids, ids)
            if n > best_n:
                best_key, best_n = key, n
        if best_key is None:
            return None, 0
        self._entries.move_to_end(best_key)
        return self._entries[best_key].kv, best_n

    def store(self, ids: torch.Tensor, kv: KV) -> None:
        """Keep ``kv`` (states of exactly ``ids``); entries that are prefixes of ``ids`` become redundant."""
        nbytes = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)
        if nbytes > self.budget_bytes:
            return
        for key in [k for k, e in self._entries.items() if len(e.ids) <= len(ids)
                    and common_prefix(e.ids, ids) == len(e.ids)]:
            self._drop(key)
        self._entries[self._next] = _Entry(ids, kv, nbytes)
        self._next += 1
        self.nbytes += nbytes
        while self.nbytes > self.budget_bytes:
            self._drop(next(iter(self._entries)))
            self.evictions += 1

    def clear(self) -> None:
        self._entries.clear()
        self.nbytes = 0

    def _drop(self, key: int) -> None:
        self.nbytes -= self._entries.pop(key).nbytes


def common_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    differ = (a[:n] != b[:n]).nonzero()
    return int(differ[0, 0]) if len(differ) else n


@dataclass
class Row:
    """One request of a batch: prompt ids, token budget, whether a stop string ends it."""

    ids: list[int]
    max_new: int
    stop_strings: bool = False
    cached: int = 0  # filled in: prompt tokens whose states came from the cache
    new_ids: list[int] | None = None  # filled in: the generated tokens


@torch.inference_mode()
def greedy_generate(model, rows: list[Row], *, eos: int, cache: PrefixCache | None,
                    stop_criteria: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
                    device: str = "cpu") -> None:
    """Fill in ``new_ids`` and ``cached`` of every row (greedy), reusing and refreshing ``cache``."""
    config = model.config.get_text_config(decoder=True) if hasattr(model.config, "get_text_config") else model.config
    layers = config.num_hidden_layers
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    dtype = next(model.parameters()).dtype
    width = max(len(r.ids) for r in rows)
    steps = max(r.max_new for r in rows)
    shape = (len(rows), heads, width + steps, head_dim)
    keys = [torch.empty(shape, dtype=dtype, device=device) for _ in range(layers)]
    values = [torch.empty(shape, dtype=dtype, device=device) for _ in range(layers)]
    mask = torch.zeros((len(rows), width + steps), dtype=torch.long, device=device)

    # 1. prefill: each row on top of its cached prefix, written straight into its place in the batch
    first = torch.empty(len(rows), dtype=torch.long)
    for i, row in enumerate(rows):
        pad = width - len(row.ids)
        ids = torch.tensor(row.ids, dtype=torch.long)
        for buf in (*keys, *values):
            buf[i, :, :pad] = 0  # masked out, but must not hold NaN garbage (0 * NaN is NaN)
        mask[i, pad:width] = 1
        prefix, n = cache.lookup(ids) if cache is not None else (None, 0)
        n = min(n, len(row.ids) - 1)  # at least one token to encode, for the next-token logits
        row_keys = [k[i:i + 1, :, pad:] for k in keys]
        row_values = [v[i:i + 1, :, pad:] for v in values]
        if n:
            for (ck, cv), k, v in zip(prefix, row_keys, row_values):
                k[:, :, :n] = ck[:, :, :n]
                v[:, :, :n] = cv[:, :, :n]
        row.cached = n
        out = model(input_ids=ids[n:][None].to(device), cache=buffer_cache(row_keys, row_values, n),
                    position_ids=torch.arange(n, len(row.ids), device=device)[None], use_cache=True,
                    logits_to_keep=1)
        first[i] = int(out.logits[0, -1].argmax())

    # 2. decode all rows together; each stops where generating it alone would have stopped
    lengths = torch.tensor([len(r.ids) for r in rows], dtype=torch.long)
    generated: list[list[int]] = [[] for _ in rows]
    done = [False] * len(rows)
    fed = [0] * len(rows)  # generated tokens whose states are in the buffer
    batch_cache = buffer_cache(keys, values, width)
    token = first
    for step in range(steps):
        for i, row in enumerate(rows):
            if done[i]:
                continue
            generated[i].append(int(token[i]))
            done[i] = _stops(generated[i], row, eos, stop_criteria, device)
        if all(done):
            break
        for i in range(len(rows)):
            if not done[i]:
                fed[i] += 1
        mask[:, width + step] = 1
        out = model(input_ids=token[:, None].to(device), cache=batch_cache, attention_mask=mask[:, :width + step + 1],
                    position_ids=(lengths + step)[:, None].to(device), use_cache=True)
        token = out.logits[:, -1].argmax(-1).cpu()

    for i, row in enumerate(rows):
        row.new_ids = generated[i]
        if cache is not None:
            pad, total = width - len(row.ids), len(row.ids) + fed[i]
            kv = [(k[i:i + 1, :, pad:pad + total].clone(), v[i:i + 1, :, pad:pad + total].clone())
                  for k, v in zip(keys, values)]
            cache.store(torch.tensor(row.ids + generated[i][:fed[i]], dtype=torch.long), kv)


def _stops(generated: list[int], row: Row, eos: int, stop_criteria, device: str) -> bool:
    if generated[-1] == eos or len(generated) >= row.max_new:
        return True
    if row.stop_strings and stop_criteria is not None:
        tail = torch.tensor([(row.ids + generated)[-64:]], dtype=torch.long, device=device)
        return bool(stop_criteria(tail, None)[0])
    return False
