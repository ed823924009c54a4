"""Greedy generation for many episodes at once: requests that arrive together are generated together.

Several episodes (threads of collect or eval) wait for the local model at the same time. The first
caller becomes the leader: it waits a few milliseconds for company, generates the gathered requests
as one batch (each stops at its own end of turn), hands out the results, and goes on
leading while requests keep arriving. A lone request only pays the short gathering window.
Greedy decoding makes the batched result the same, token for token, as generating alone.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Hashable


@dataclass
class GenerationRequest:
    """One prompt (token ids) and how many new tokens it may take; ``key`` groups compatible requests."""

    ids: list[int]
    max_new: int
    key: Hashable = ()
    stop_strings: bool = False  # the turn also ends at the end of its first tool call
    result: list[int] | None = None
    cached: int = 0  # prompt tokens whose KV states were reused (set by the generator)
    error: BaseException | None = None
    batch_size: int = 0
    queued_s: float = 0.0
    created: float = field(default_factory=time.perf_counter)
    done: bool = False


GenerateBatch = Callable[[list[GenerationRequest]], list[list[int]]]


class RequestBatcher:
    """Runs ``generate_batch`` on groups of concurrent requests with the same key."""

    def __init__(self, generate_batch: GenerateBatch, *, window_s: float = 0.01, max_batch: int = 8):
        self.generate_batch = generate_batch
        self.window_s = window_s
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._pending: list[GenerationRequest] = []
        self._leading = False
        self.batches: list[int] = []  # sizes of the batches run, for accounting and tests

    def submit(self, request: GenerationRequest) -> GenerationRequest:
        """Block until ``request`` has its result (or error); returns it filled in."""
        with self._cond:
            self._pending.append(request)
            if self._leading:
                while not request.done:
                    self._cond.wait()
                return self._finish(request)
            self._leading = True
        try:
            self._lead()
        finally:
            with self._cond:
                self._leading = False
                self._cond.notify_all()
        return self._finish(request)

    def _lead(self) -> None:
        while True:
            time.sleep(self.window_s)  # let requests that are on their way join this batch
            with self._cond:
                if not self._pending:
                    return
                key = self._pending[0].key
                batch = [r for r in self._pending if r.key == key][: self.max_batch]
                for r in batch:
                    self._pending.remove(r)
            started = time.perf_counter()
            try:
                results = self.generate_batch(batch)
                error = None
            except BaseException as exc:  # every waiter gets the error, not just the leader
                results, error = [None] * len(batch), exc
            with self._cond:
                self.batches.append(len(batch))
                for r, out in zip(batch, results):
                    r.result, r.error, r.batch_size = out, error, len(batch)
                    r.queued_s = started - r.created
                    r.done = True
                self._cond.notify_all()

    @staticmethod
    def _finish(request: GenerationRequest) -> GenerationRequest:
        if request.error is not None:
            raise request.error
        return request
