"""Greedy decoding for concurrent episodes with KV caches kept across turns.

An agent episode asks the model many times over a growing history: the prompt of turn k+1 starts
with the prompt and answer of turn k. :class:`PrefixCache` keeps the keys and values of recent
sequences (bounded in bytes, least recently used evicted first); a new request looks up the entry
sharing the longest token prefix with it and only encodes the rest. The match is on tokens, not on
episode ids, so a re-rendered history that differs from the generated text (a tool call's JSON laid
out by the template) still reuses everything up to the first differing token, and episodes that
share a system prompt and tool list share that too.

:class:`BatchDecoder` batches continuously: requests join a running batch between two decoding steps
(each encoded on top of its cached prefix, straight into its slot of a preallocated buffer) and
leave it the step they end, so the batch never waits for its longest row. Rows of different lengths
decode side by side, each writing at its own position under a per-row mask. It is a plain argmax
loop because the local backend's generation config has no logits processors for greedy decoding;
the stop rules are transformers' own (end-of-turn token, ``max_new_tokens``,
``StopStringCriteria``), so a row ends where ``model.generate`` would have ended it.

A step can also verify draft tokens (:class:`PromptLookup`, prompt-lookup decoding): each row is fed
its last token plus a few tokens guessed from its own history, and keeps every argmax up to the
first wrong guess, so a step yields one token per row or more, never different ones.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from transformers import AttentionInterface, DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from pipelines.llm.local.packed import PackedLinears

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
    """Whether :class:`BatchDecoder` can drive this model: a decoder whose every layer is full attention."""
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
def _swapped_attention(config, name: str) -> Iterator[None]:
    before = config._attn_implementation
    config._attn_implementation = name
    try:
        yield
    finally:
        config._attn_implementation = before


class PromptLookup:
    """Draft tokens for one row from its own history (prompt-lookup decoding): the tokens that
    followed the latest earlier occurrence of its last ``n`` tokens (else ``n - 1``, ... 1).

    Agent turns copy a great deal from their context (file contents, command output, earlier calls),
    so drafts taken from the context are often right; a step verifies them all at once and keeps
    the longest prefix the model agrees with, which greedy decoding would have produced anyway.
    """

    def __init__(self, tokens: list[int], n: int = 3):
        self.tokens: list[int] = []
        self.n = n
        self._index: list[dict[tuple[int, ...], int]] = [{} for _ in range(n)]  # m-gram -> position after it
        self.extend(tokens)

    def extend(self, new: list[int]) -> None:
        start = len(self.tokens)
        self.tokens.extend(new)
        tokens = self.tokens
        for end in range(max(1, start), len(tokens)):  # every m-gram that now has a token after it
            for m in range(1, min(self.n, end) + 1):
                self._index[m - 1][tuple(tokens[end - m:end])] = end

    def draft(self, k: int) -> list[int]:
        tokens = self.tokens
        for m in range(min(self.n, len(tokens)), 0, -1):
            after = self._index[m - 1].get(tuple(tokens[-m:]))
            if after is not None:
                return tokens[after:after + k]
        return []


class BatchDecoder:
    """Greedy decoding of up to ``slots`` requests at once, each joining and leaving between steps.

    :meth:`add` encodes a request's prompt on top of its longest cached prefix straight into a free
    slot of the batch buffer and takes its first token; :meth:`step` feeds every row its last token
    in one forward pass (rows of different lengths side by side, each at its own position) and
    takes the next. A row ends where ``model.generate`` would end it (end-of-turn token, its token
    budget, or the stop string) and leaves at once: its states go to the prefix cache and the last
    row moves into its slot, so the batch stays dense and a waiting request can take the room at
    the next step. Rows are objects with ``ids``, ``max_new``, ``min_new``, ``stop_strings``, ``cached``
    and ``result`` (:class:`pipelines.llm.local.batching.GenerationRequest`).

    With ``draft_tokens`` > 0 a step also feeds each row up to that many draft tokens from its own
    history (:class:`PromptLookup`) after its last token and keeps, from the step's argmaxes, the
    first one and every next one whose predecessor matched the draft: exactly the tokens one-token
    steps would have produced, in fewer steps. A step carries at most ``slots * (1 + draft_tokens)``
    tokens, so fewer rows verify longer drafts (up to ``MAX_DRAFT``).
    """

    MAX_DRAFT = 7

    def __init__(self, model, *, eos: int, slots: int, cache: PrefixCache | None,
                 stop_criteria: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 device: str = "cpu", packed: PackedLinears | None = None, draft_tokens: int = 0):
        config = model.config.get_text_config(decoder=True) if hasattr(model.config, "get_text_config") else model.config
        self.model, self.eos, self.slots, self.cache, self.device = model, eos, slots, cache, device
        self.stop_criteria = stop_criteria
        self.packed = packed  # the decoding step's products through packed weights (prefill is left alone)
        # drafts need the multi-token attention above, which stands in for SDPA only
        self._config = config
        self.draft_tokens = draft_tokens if getattr(config, "_attn_implementation", None) == "sdpa" else 0
        self._budget = slots * (1 + self.draft_tokens)  # tokens per step
        self._layers = config.num_hidden_layers
        self._heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        self._head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self._dtype = next(model.parameters()).dtype
        self.rows: list[Any] = []  # in slot order
        self._lengths: list[int] = []  # tokens whose states are in each slot
        self._lookups: list[PromptLookup | None] = []  # each slot's draft source
        self._keys: list[torch.Tensor] = []
        self._values: list[torch.Tensor] = []
        self._capacity = 0
        self.drafted = 0  # draft tokens fed, and how many of them the model agreed with
        self.accepted = 0

    def __len__(self) -> int:
        return len(self.rows)

    @torch.inference_mode()
    def add(self, request) -> bool:
        """Encode ``request`` into the next free slot and take its first token; True if that ended it."""
        if len(self.rows) >= self.slots:
            raise RuntimeError(f"BatchDecoder: all {self.slots} slots are taken")
        ids = torch.tensor(request.ids, dtype=torch.long)
        self._reserve(len(ids) + request.max_new + self.MAX_DRAFT)  # a step writes its draft's columns too
        slot = len(self.rows)
        prefix, n = self.cache.lookup(ids) if self.cache is not None else (None, 0)
        n = min(n, len(ids) - 1)  # at least one token to encode, for the next-token logits
        row_keys = [k[slot:slot + 1] for k in self._keys]
        row_values = [v[slot:slot + 1] for v in self._values]
        if n:
            for (ck, cv), k, v in zip(prefix, row_keys, row_values):
                k[:, :, :n] = ck[:, :, :n]
                v[:, :, :n] = cv[:, :, :n]
        out = self.model(input_ids=ids[n:][None].to(self.device), cache=buffer_cache(row_keys, row_values, n),
                         position_ids=torch.arange(n, len(ids), device=self.device)[None], use_cache=True,
                         logits_to_keep=1)
        request.cached = n
        request.result = []  # the first token counts toward min_new too
        request.result.append(self._choices(out.logits[:, -1:], [request])[0][0])
        self.rows.append(request)
        self._lengths.append(len(ids))
        self._lookups.append(PromptLookup(request.ids + request.result) if self.draft_tokens else None)
        if self._stops(request):
            self._leave(slot)
            return True
        return False

    @torch.inference_mode()
    def step(self) -> list[Any]:
        """One token more for every row (more where its draft was right); returns the rows that ended
        (they have left the batch)."""
        if not self.rows:
            return []
        drafts = self._drafts()
        q = 1 + max(len(d) for d in drafts)
        positions = torch.tensor(self._lengths, dtype=torch.long, device=self.device)
        width = max(self._lengths) + q
        cache = DynamicCache()
        cache.layers = [RowsLayer(k, v, positions, width, q) for k, v in zip(self._keys, self._values)]
        fed = [[row.result[-1], *draft, *[self.eos] * (q - 1 - len(draft))] for row, draft in zip(self.rows, drafts)]
        tokens = torch.tensor(fed, dtype=torch.long, device=self.device)
        steps = torch.arange(q, device=self.device)
        columns = torch.arange(width, device=self.device)
        if q == 1:
            # a 2-D padding mask: with the cache reporting width - 1 tokens seen, transformers builds from it
            # the mask each attention implementation expects (causality then excludes nothing)
            mask = (columns[None] <= positions[:, None]).long()
        else:  # token t of row b sees the row's columns up to its own position
            mask = (columns[None, None] <= (positions[:, None] + steps[None])[:, :, None])[:, None]
        # multi-token steps through rows_attention (the config is shared by every layer)
        with (self.packed.active() if self.packed is not None else nullcontext(),
              _swapped_attention(self._config, ROWS_ATTENTION) if q > 1 else nullcontext()):
            out = self.model(input_ids=tokens, cache=cache, attention_mask=mask,
                             position_ids=positions[:, None] + steps[None], use_cache=True)
        choices = self._choices(out.logits, self.rows)
        ended = []
        for i, (row, draft) in enumerate(zip(self.rows, drafts)):
            taken = 0
            for t, token in enumerate(choices[i]):
                row.result.append(token)
                taken += 1
                if self._stops(row):
                    ended.append(row)
                    break
                if t >= len(draft) or draft[t] != token:
                    break
            self._lengths[i] += taken  # the row's last token and the draft tokens that were right
            self.drafted += len(draft)
            self.accepted += taken - 1
            if self._lookups[i] is not None:
                self._lookups[i].extend(row.result[-taken:])
        for row in ended:
            self._leave(next(i for i, r in enumerate(self.rows) if r is row))
        return ended

    def _drafts(self) -> list[list[int]]:
        """Each row's draft tokens for this step, within the step's token budget and the row's own budget."""
        if not self.draft_tokens:
            return [[] for _ in self.rows]
        k = min(self.MAX_DRAFT, self._budget // len(self.rows) - 1)
        return [lookup.draft(max(0, min(k, row.max_new - len(row.result) - 1)))
                for row, lookup in zip(self.rows, self._lookups)]

    def reset(self) -> None:
        """Drop every row (after a failed step) and the batch buffer."""
        self.rows, self._lengths, self._lookups = [], [], []
        self._free()

    def _choices(self, logits: torch.Tensor, rows: list[Any]) -> list[list[int]]:
        """The argmax of every ``[row, token]`` of ``logits``, the end-of-turn token ruled out where the
        row would still be short of its ``min_new`` (what transformers' ``min_new_tokens`` does): token
        ``t`` of a row follows its ``len(result) + t`` generated tokens if the draft before it holds."""
        generated = torch.tensor([len(row.result) for row in rows], device=logits.device)[:, None]
        short = generated + torch.arange(logits.shape[1], device=logits.device)[None] < torch.tensor(
            [row.min_new for row in rows], device=logits.device)[:, None]
        if short.any():
            logits = logits.clone()
            logits[..., self.eos] = logits[..., self.eos].masked_fill(short, float("-inf"))
        return logits.argmax(-1).tolist()

    def _stops(self, row) -> bool:
        generated = row.result
        if generated[-1] == self.eos or len(generated) >= row.max_new:
            return True
        if row.stop_strings and self.stop_criteria is not None:
            tail = torch.tensor([(row.ids + generated)[-64:]], dtype=torch.long, device=self.device)
            return bool(self.stop_criteria(tail, None)[0])
        return False

    def _leave(self, slot: int) -> None:
        row, length, last = self.rows[slot], self._lengths[slot], len(self.rows) - 1
        if self.cache is not None:  # the states of the prompt and every token fed back (not the last one)
            kv = [(k[slot:slot + 1, :, :length].clone(), v[slot:slot + 1, :, :length].clone())
                  for k, v in zip(self._keys, self._values)]
            self.cache.store(torch.tensor(row.ids + row.result[:length - len(row.ids)], dtype=torch.long), kv)
        if slot != last:
            moved = self._lengths[last]
            for buf in (*self._keys, *self._values):
                buf[slot, :, :moved] = buf[last, :, :moved]
            self.rows[slot], self._lengths[slot], self._lookups[slot] = self.rows[last], moved, self._lookups[last]
        self.rows.pop()
        self._lengths.pop()
        self._lookups.pop()
        if not self.rows:
            self._free()

    def _reserve(self, tokens: int) -> None:
        """Make every slot hold ``tokens``; grows the buffer by at least a quarter so growth stays rare."""
        if tokens <= self._capacity:
            return
        capacity = -(-max(tokens, self._capacity * 5 // 4) // 256) * 256
        shape = (self.slots, self._heads, capacity, self._head_dim)
        grown = []
        for old in (*self._keys, *self._values) if self._keys else [None] * (2 * self._layers):
            buf = torch.zeros(shape, dtype=self._dtype, device=self.device)  # zeros: masked columns must not be NaN
            if old is not None:
                buf[:, :, :self._capacity] = old
            grown.append(buf)
        self._keys, self._values = grown[:self._layers], grown[self._layers:]
        self._capacity = capacity

    def _free(self) -> None:
        self._keys, self._values, self._capacity = [], [], 0
