"""Median timing per implementation and size from timings.csv; writes findings.md."""
import csv
import statistics
from collections import defaultdict

runs = defaultdict(list)
with open("timings.csv", newline="") as fh:
    for row in csv.DictReader(fh):
        runs[row["impl"], int(row["input_size"])].append(float(row["seconds"]))
sizes = sorted({size for _, size in runs})
lines = ["| size | v1_median | v2_median | speedup |", "|---|---|---|---|"]
faster = set()
for size in sizes:
    v1, v2 = statistics.median(runs["v1", size]), statistics.median(runs["v2", size])
    faster.add("v2" if v2 < v1 else "v1")
    lines.append(f"| {size} | {v1:.4f} | {v2:.4f} | {v1 / v2:.2f} |")
verdict = f"{faster.pop()} is faster at all sizes" if len(faster) == 1 else "mixed"
with open("findings.md", "w") as out:
    out.write("# v1 vs v2\n\nMedians are used because single runs include outliers (one v2 run took 1.9 s).\n\n")
    out.write("\n".join(lines) + f"\n\nConclusion: {verdict}\n")
