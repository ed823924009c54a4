"""The prefix cache's bookkeeping on small tensors: longest match, redundant prefixes, LRU by bytes."""

import torch

from pipelines.llm.local.prefix_cache import PrefixCache, common_prefix


def states(n: int, value: float = 0.0):
    """Two layers of fake states for ``n`` tokens: 2 * 2 * n * 4 floats of 4 bytes = 64 * n bytes."""
    return [(torch.full((1, 1, n, 4), value), torch.full((1, 1, n, 4), value)) for _ in range(2)]


def ids(*tokens):
    return torch.tensor(tokens, dtype=torch.long)


def test_common_prefix():
    assert common_prefix(ids(1, 2, 3), ids(1, 2, 4, 5)) == 2
    assert common_prefix(ids(1, 2), ids(1, 2, 3)) == 2
    assert common_prefix(ids(9), ids(1)) == 0 and common_prefix(ids(), ids(1)) == 0


def test_lookup_finds_the_longest_shared_prefix():
    cache = PrefixCache(10**6)
    cache.store(ids(1, 2, 3), states(3, 1.0))
    cache.store(ids(1, 5, 6, 7), states(4, 2.0))
    kv, n = cache.lookup(ids(1, 5, 6, 9))
    assert n == 3 and kv[0][0][0, 0, 0, 0] == 2.0
    assert cache.lookup(ids(8, 8)) == (None, 0)


def test_an_extended_sequence_replaces_its_prefix():
    cache = PrefixCache(10**6)
    cache.store(ids(1, 2, 3), states(3))
    cache.store(ids(1, 2, 3, 4, 5), states(5))
    assert len(cache) == 1 and cache.nbytes == 64 * 5


def test_least_recently_used_entries_go_first_beyond_the_budget():
    cache = PrefixCache(64 * 10)
    cache.store(ids(1, 1, 1, 1), states(4))
    cache.store(ids(2, 2, 2, 2), states(4))
    cache.lookup(ids(1, 1))  # touch the first: the second is now the oldest
    cache.store(ids(3, 3, 3, 3), states(4))
    assert len(cache) == 2 and cache.evictions == 1 and cache.nbytes == 64 * 8
    assert cache.lookup(ids(2, 2))[1] == 0 and cache.lookup(ids(1, 1))[1] == 2
    cache.store(ids(4,) * 20, states(20))  # larger than the whole budget: not kept
    assert cache.nbytes == 64 * 8
