"""The request batcher on its own: grouping by key, a lone request, errors reach every waiter."""

import threading

import pytest

from pipelines.llm.batching import GenerationRequest, RequestBatcher


def run_concurrently(batcher, requests):
    results, gate = {}, threading.Barrier(len(requests))

    def go(i):
        gate.wait()
        try:
            results[i] = batcher.submit(requests[i]).result
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_requests_share_batches_by_key():
    seen = []

    def generate(batch):
        seen.append([tuple(r.ids) for r in batch])
        assert len({r.key for r in batch}) == 1
        return [[sum(r.ids)] * r.max_new for r in batch]

    batcher = RequestBatcher(generate, window_s=0.05, max_batch=8)
    requests = [GenerationRequest([i, i], max_new=2, key=i % 2) for i in range(6)]
    results = run_concurrently(batcher, requests)
    assert results == {i: [2 * i, 2 * i] for i in range(6)}
    assert sorted(len(b) for b in seen) == [3, 3] and sum(batcher.batches) == 6


def test_lone_request_runs_alone():
    batcher = RequestBatcher(lambda batch: [[7] for _ in batch], window_s=0.001)
    assert batcher.submit(GenerationRequest([1], 1)).result == [7] and batcher.batches == [1]


def test_an_error_reaches_every_waiter_and_the_batcher_recovers():
    def generate(batch):
        raise RuntimeError("out of memory")

    batcher = RequestBatcher(generate, window_s=0.05)
    results = run_concurrently(batcher, [GenerationRequest([i], 1) for i in range(3)])
    assert all(isinstance(r, RuntimeError) for r in results.values())
    batcher.generate_batch = lambda batch: [[1] for _ in batch]
    assert batcher.submit(GenerationRequest([0], 1)).result == [1]
    with pytest.raises(RuntimeError):
        RequestBatcher(generate, window_s=0).submit(GenerationRequest([0], 1))
