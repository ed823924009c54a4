"""Runs of missing minutes per sensor in readings.csv, written to gaps.txt."""
import csv
from collections import defaultdict
from datetime import datetime, timedelta

FMT = "%Y-%m-%d %H:%M"
MINUTE = timedelta(minutes=1)
seen = defaultdict(set)
with open("readings.csv", newline="") as fh:
    for row in csv.DictReader(fh):
        seen[row["sensor"]].add(datetime.strptime(row["timestamp"], FMT))
lines = []
for sensor in sorted(seen):
    t, last = min(seen[sensor]), max(seen[sensor])
    gap_start = None
    while t <= last:
        if t not in seen[sensor] and gap_start is None:
            gap_start = t
        elif t in seen[sensor] and gap_start is not None:
            count = int((t - gap_start) / MINUTE)
            lines.append(f"{sensor} {gap_start:{FMT}} {t - MINUTE:{FMT}} {count}")
            gap_start = None
        t += MINUTE
with open("gaps.txt", "w") as out:
    out.write("".join(line + "\n" for line in lines))
