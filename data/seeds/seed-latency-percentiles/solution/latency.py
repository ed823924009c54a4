"""Per-path request count and nearest-rank p50/p95 latency from access.log."""
import json
import math
from collections import defaultdict


def nearest_rank(values, p):
    ordered = sorted(values)
    return ordered[math.ceil(p / 100 * len(ordered)) - 1]


latencies = defaultdict(list)
with open("access.log") as fh:
    for line in fh:
        fields = line.split()
        if len(fields) != 5 or not fields[4].endswith("ms"):
            continue
        _, _, path, status, ms = fields
        if status.startswith("5"):
            continue  # failed requests time out and would swamp the percentiles
        latencies[path].append(int(ms[:-2]))
summary = {path: {"count": len(v), "p50": nearest_rank(v, 50), "p95": nearest_rank(v, 95)}
           for path, v in sorted(latencies.items())}
with open("latency.json", "w") as out:
    json.dump(summary, out, indent=2)
