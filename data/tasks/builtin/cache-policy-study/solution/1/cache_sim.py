"""Simulate cache replacement policies over trace.txt."""
import json
from collections import OrderedDict


def read_trace(path="trace.txt"):
    with open(path) as fh:
        return [line.strip() for line in fh if line.strip()]


def simulate(trace, capacity, policy):
    """(hits, misses) of `policy` ("lru", "fifo", "lfu") with room for `capacity` keys."""
    cache = OrderedDict()  # key -> accesses since it entered; order = recency (lru, lfu) or arrival (fifo)
    hits = 0
    for key in trace:
        if key in cache:
            hits += 1
            cache[key] += 1
            if policy != "fifo":
                cache.move_to_end(key)
            continue
        if len(cache) >= capacity:
            if policy == "lfu":
                fewest = min(cache.values())
                victim = next(k for k, n in cache.items() if n == fewest)  # oldest use among the fewest
            else:
                victim = next(iter(cache))
            del cache[victim]
        cache[key] = 1
    return hits, len(trace) - hits


if __name__ == "__main__":
    trace = read_trace()
    hits, misses = simulate(trace, 4, "lru")
    results = {"lru": {"capacity": 4, "hits": hits, "misses": misses, "hit_rate": round(hits / len(trace), 4)}}
    with open("results.json", "w") as fh:
        json.dump(results, fh, indent=2)
