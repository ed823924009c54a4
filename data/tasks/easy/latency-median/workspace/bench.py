"""Times of five runs of the parser benchmark, in milliseconds."""

runs = [41.8, 39.2, 47.5, 40.6, 38.9]
ordered = sorted(runs)
print(f"runs: {len(runs)}")
print(f"median_ms: {ordered[len(ordered) // 2]}")
print(f"worst_ms: {ordered[-1]}")
