"""Greedy generation for many episodes at once: a running batch that requests join and leave.

Several episodes (threads of collect or eval) wait for the local model at the same time, and their
turns end at very different lengths. Waiting requests join the running batch at the next decoding
step and leave it the step they end (continuous batching), so no episode waits for a longer one.

No thread of its own: the first caller drives the batch, and when its own request is done it hands
the batch to another waiting caller. A lone request starts at once. Greedy decoding makes every
result the same, token for token, as generating it alone.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(eq=False)  # requests are compared by identity
class GenerationRequest:
    """One prompt (token ids) and how many new tokens it may take."""

    ids: list[int]
    max_new: int
    stop_strings: bool = False  # the turn also ends at the end of its first tool call
    min_new: int = 0  # the end-of-turn token is held back until this many tokens
    result: list[int] | None = None  # the generated tokens (filled in by the decoder)
    cached: int = 0  # prompt tokens whose KV states were reused (set by the decoder)
    error: BaseException | None = None
    batch_size: int = 0  # the most rows decoded together with this one
    queued_s: float = 0.0
    created: float = field(default_factory=time.perf_counter)
    done: bool = False


class Decoder(Protocol):
    """The model side of a running batch (:class:`pipelines.llm.local.decoder.BatchDecoder`)."""

    rows: list[GenerationRequest]

    def __len__(self) -> int: ...

    def add(self, request: GenerationRequest) -> bool:
        """Join the batch and take the first token; True if that already ended the request."""

    def step(self) -> list[GenerationRequest]:
        """One more token for every row; returns the rows that ended and left."""

    def reset(self) -> None:
        """Drop every row."""


class ContinuousBatcher:
    """Serves ``submit`` calls from many threads through one :class:`Decoder`, ``max_batch`` rows at most.

    ``lock`` is held around the decoder's model calls, so other users of the same model (sampled
    requests generated alone) take turns with it.
    """

    def __init__(self, decoder: Decoder, *, max_batch: int = 8, lock: threading.Lock | None = None):
        self.decoder = decoder
        self.max_batch = max_batch
        self._model_lock = lock or threading.Lock()
        self._cond = threading.Condition()
        self._pending: list[GenerationRequest] = []
        self._driving = False
        # accounting, for the benchmark and tests
        self.admitted = 0
        self.steps = 0
        self.rows_stepped = 0
        self.max_rows = 0

    @property
    def mean_rows(self) -> float:
        """Rows per decoding step, on average."""
        return self.rows_stepped / self.steps if self.steps else 0.0

    def submit(self, request: GenerationRequest) -> GenerationRequest:
        """Block until ``request`` has its result (or error); returns it filled in."""
        with self._cond:
            self._pending.append(request)
            while not request.done and self._driving:
                self._cond.wait()
            if request.done:
                return self._finish(request)
            self._driving = True
        try:
            self._drive(request)
        finally:
            with self._cond:
                self._driving = False
                self._cond.notify_all()  # a waiting caller takes over the rows still running
        return self._finish(request)

    def _drive(self, mine: GenerationRequest) -> None:
        while not mine.done:
            with self._cond:
                room = self.max_batch - len(self.decoder)
                joining, self._pending = self._pending[:room], self._pending[room:]
            ended: list[GenerationRequest] = []
            try:
                with self._model_lock:
                    for request in joining:
                        request.queued_s = time.perf_counter() - request.created
                        self.admitted += 1
                        if self.decoder.add(request):
                            ended.append(request)
                    rows = len(self.decoder)
                    if rows:
                        for request in self.decoder.rows:
                            request.batch_size = max(request.batch_size, rows)
                        ended += self.decoder.step()
                        self.steps += 1
                        self.rows_stepped += rows
                        self.max_rows = max(self.max_rows, rows)
            except BaseException as exc:  # every request in flight gets the error, not just the driver's
                failed = {*joining, *self.decoder.rows} - set(ended)
                self.decoder.reset()
                for request in failed:
                    request.error = exc
                ended += failed
                if not isinstance(exc, Exception):  # Ctrl-C: the waiters are told, the driver stops
                    with self._cond:
                        for request in ended:
                            request.done = True
                    raise
            if ended:
                with self._cond:
                    for request in ended:
                        request.batch_size = max(request.batch_size, 1)
                        request.done = True
                    self._cond.notify_all()

    @staticmethod
    def _finish(request: GenerationRequest) -> GenerationRequest:
        if request.error is not None:
            raise request.error
        return request
