"""KV states of recent token sequences, for requests whose prompt starts where an earlier one did.

An agent episode asks the model many times over a growing history: the prompt of turn k+1 starts
with the prompt and answer of turn k. :class:`PrefixCache` keeps the keys and values of recent
sequences (bounded in bytes, least recently used evicted first); a new request looks up the entry
sharing the longest token prefix with it and only encodes the rest. The match is on tokens, not on
episode ids, so a re-rendered history that differs from the generated text (a tool call's JSON laid
out by the template) still reuses everything up to the first differing token, and episodes that
share a system prompt and tool list share that too.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values of shape [1, heads, tokens, head_dim]


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
