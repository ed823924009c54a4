"""Greedy decoding for concurrent episodes, each on top of the KV states of its earlier turns.

:class:`BatchDecoder` batches continuously: requests join a running batch between two decoding steps
(each encoded on top of its cached prefix (:mod:`pipelines.llm.local.prefix_cache`), straight into its
slot of a preallocated buffer) and leave it the step they end, so the batch never waits for its longest
row. Rows of different lengths decode side by side, each writing at its own position under a per-row
mask. It is a plain argmax loop because the local backend's generation config has no logits processors
for greedy decoding; the stop rules are transformers' own (end-of-turn token, ``max_new_tokens``,
``StopStringCriteria``), so a row ends where ``model.generate`` would have ended it. A step can also
verify draft tokens (:mod:`pipelines.llm.local.drafts`).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, Sequence

import torch
from transformers import DynamicCache

from pipelines.llm.local.attention import ROWS_ATTENTION, swapped_attention
from pipelines.llm.local.cache_layers import RowsLayer, buffer_cache
from pipelines.llm.local.drafts import PromptLookup
from pipelines.llm.local.packed import PackedLinears
from pipelines.llm.local.prefix_cache import PrefixCache


def supported(config) -> bool:
    """Whether :class:`BatchDecoder` can drive this model: a decoder whose every layer is full attention."""
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    if getattr(text, "is_encoder_decoder", False) or not hasattr(text, "num_hidden_layers"):
        return False
    return all(t == "full_attention" for t in (getattr(text, "layer_types", None) or ["full_attention"]))


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

    def __init__(self, model, *, eos: int | Sequence[int], slots: int, cache: PrefixCache | None,
                 stop_criteria: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 device: str = "cpu", packed: PackedLinears | None = None, draft_tokens: int = 0):
        config = model.config.get_text_config(decoder=True) if hasattr(model.config, "get_text_config") else model.config
        # eos: the end-of-turn token, or several (the first also fills unused draft positions)
        self.stops = [int(eos)] if isinstance(eos, int) else [int(t) for t in eos]
        self.model, self.eos, self.slots, self.cache, self.device = model, self.stops[0], slots, cache, device
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
              swapped_attention(self._config, ROWS_ATTENTION) if q > 1 else nullcontext()):
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
            logits[..., self.stops] = logits[..., self.stops].masked_fill(short[..., None], float("-inf"))
        return logits.argmax(-1).tolist()

    def _stops(self, row) -> bool:
        generated = row.result
        if generated[-1] in self.stops or len(generated) >= row.max_new:
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
