"""Per-grader statistics and normalised exam scores."""
import csv
from statistics import fmean, pstdev


def read_scores(path="scores.csv"):
    with open(path, newline="") as fh:
        return [{"student": r["student"], "grader": r["grader"], "score": float(r["score"])}
                for r in csv.DictReader(fh)]


def grader_stats(rows):
    """{grader: (n, mean, population std)}"""
    by_grader = {}
    for row in rows:
        by_grader.setdefault(row["grader"], []).append(row["score"])
    return {g: (len(s), fmean(s), pstdev(s)) for g, s in sorted(by_grader.items())}


def write_stats(stats):
    with open("grader_stats.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["grader", "n", "mean", "std"])
        for grader, (n, mean, std) in stats.items():
            writer.writerow([grader, n, f"{mean:.2f}", f"{std:.2f}"])


def with_z(rows, stats):
    out = []
    for row in rows:
        _, mean, std = stats[row["grader"]]
        out.append({**row, "z": (row["score"] - mean) / std})
    return sorted(out, key=lambda r: (-r["z"], r["student"]))


def write_normalized(rows):
    with open("normalized.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", "grader", "score", "z"])
        for row in rows:
            writer.writerow([row["student"], row["grader"], f"{row['score']:g}", f"{row['z']:.3f}"])


if __name__ == "__main__":
    rows = read_scores()
    stats = grader_stats(rows)
    write_stats(stats)
    write_normalized(with_z(rows, stats))
