"""The continuous batcher on its own, with a counting decoder: joining a running batch, leaving at
one's own end, the batch limit, a lone request, errors reaching every waiter."""

import threading
import time

import pytest

from pipelines.llm.local.batching import ContinuousBatcher, GenerationRequest


class CountingDecoder:
    """Row r's tokens are sum(r.ids), then 1, 2, 3, ... until max_new; records what each step saw."""

    def __init__(self, step_s: float = 0.002, fail_with_rows: int | None = None):
        self.rows: list[GenerationRequest] = []
        self.step_s = step_s
        self.fail_with_rows = fail_with_rows  # the first step with this many rows fails
        self.steps_seen: list[int] = []  # rows per step
        self.resets = 0

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, request):
        request.result = [sum(request.ids)]
        if request.max_new <= 1:
            return True
        self.rows.append(request)
        return False

    def step(self):
        if len(self.rows) == self.fail_with_rows:
            self.fail_with_rows = None
            raise RuntimeError("out of memory")
        time.sleep(self.step_s)
        self.steps_seen.append(len(self.rows))
        for row in self.rows:
            row.result.append(len(row.result))
        ended = [r for r in self.rows if len(r.result) >= r.max_new]
        self.rows = [r for r in self.rows if len(r.result) < r.max_new]
        return ended

    def reset(self):
        self.rows = []
        self.resets += 1


def expected(request: GenerationRequest) -> list[int]:
    return [sum(request.ids), *range(1, request.max_new)]


def run_concurrently(batcher, requests, stagger_s: float = 0.0):
    results, order = {}, []

    def go(i):
        time.sleep(stagger_s * i)
        try:
            results[i] = batcher.submit(requests[i]).result
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[i] = exc
        order.append(i)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a waiter was never served"
    return results, order


def test_short_requests_join_a_running_batch_and_leave_before_the_long_one():
    decoder = CountingDecoder()
    batcher = ContinuousBatcher(decoder, max_batch=8)
    requests = [GenerationRequest([1], max_new=200)] + [GenerationRequest([i], max_new=5) for i in range(2, 6)]
    results, order = run_concurrently(batcher, requests, stagger_s=0.02)
    assert results == {i: expected(r) for i, r in enumerate(requests)}
    # every short one joined while the long one ran, and ended without waiting for it
    assert order[-1] == 0 and batcher.max_rows >= 2
    assert batcher.admitted == 5 and requests[0].batch_size >= 2
    # the long request's driver handed over nothing it still needed: each result is complete
    assert decoder.steps_seen.count(1) > 0 and max(decoder.steps_seen) <= 5


def test_the_batch_never_exceeds_max_batch():
    decoder = CountingDecoder()
    batcher = ContinuousBatcher(decoder, max_batch=2)
    requests = [GenerationRequest([i], max_new=3 + i) for i in range(6)]
    results, _ = run_concurrently(batcher, requests)
    assert results == {i: expected(r) for i, r in enumerate(requests)}
    assert max(decoder.steps_seen) == 2 and batcher.max_rows == 2


def test_lone_request_runs_at_once():
    batcher = ContinuousBatcher(CountingDecoder(step_s=0))
    started = time.perf_counter()
    request = batcher.submit(GenerationRequest([7], 3))
    assert request.result == [7, 1, 2] and request.batch_size == 1
    assert time.perf_counter() - started < 0.5 and request.queued_s < 0.05
    assert batcher.submit(GenerationRequest([4], 1)).result == [4]  # ended at its first token


def test_an_error_reaches_every_waiter_and_the_batcher_recovers():
    decoder = CountingDecoder(fail_with_rows=3)
    batcher = ContinuousBatcher(decoder, max_batch=8)
    results, _ = run_concurrently(batcher, [GenerationRequest([i], 50) for i in range(3)])
    assert all(isinstance(r, RuntimeError) for r in results.values()), results
    assert decoder.resets == 1 and len(decoder) == 0
    assert batcher.submit(GenerationRequest([0], 2)).result == [0, 1]
    with pytest.raises(RuntimeError):
        ContinuousBatcher(CountingDecoder(fail_with_rows=1)).submit(GenerationRequest([0], 2))
