"""Summary of latencies.txt (one response time in milliseconds per line)."""

values = [float(line) for line in open("latencies.txt") if line.strip()]
print(f"samples={len(values)}")
print(f"mean_ms={sum(values) / len(values):.3f}")
print(f"max_ms={max(values):.0f}")
