"""How far can we trust the LLM judge? Its labels against the human ones in labels.csv."""
import csv
import json
from collections import Counter

LABELS = ("pass", "fail", "unsure")


def read_labels(path="labels.csv"):
    with open(path, newline="") as fh:
        return [(row["human"], row["judge"]) for row in csv.DictReader(fh)]


def agreement(pairs):
    """(observed agreement, Cohen's kappa)."""
    n = len(pairs)
    observed = sum(h == j for h, j in pairs) / n
    human, judge = Counter(h for h, _ in pairs), Counter(j for _, j in pairs)
    expected = sum(human[label] * judge[label] for label in LABELS) / (n * n)
    return observed, (observed - expected) / (1 - expected)


def write_agreement(pairs):
    observed, kappa = agreement(pairs)
    with open("agreement.json", "w") as fh:
        json.dump({"n": len(pairs), "agreement": round(observed, 3), "kappa": round(kappa, 3)}, fh, indent=2)


def confusion(pairs):
    counts = Counter(pairs)
    return {h: {j: counts[(h, j)] for j in LABELS} for h in LABELS}


def bias(pairs):
    human, judge = Counter(h for h, _ in pairs), Counter(j for _, j in pairs)
    per_label = {}
    for label in LABELS:
        hits = sum(h == j == label for h, j in pairs)
        per_label[label] = {"precision": round(hits / judge[label], 3) if judge[label] else None,
                            "recall": round(hits / human[label], 3) if human[label] else None}
    over = max(LABELS, key=lambda label: judge[label] - human[label])
    return {"judge_overpredicts": over, "per_label": per_label}


if __name__ == "__main__":
    pairs = read_labels()
    write_agreement(pairs)
    table = confusion(pairs)
    with open("confusion.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["human", *LABELS])
        for label in LABELS:
            writer.writerow([label, *(table[label][j] for j in LABELS)])
    with open("bias.json", "w") as fh:
        json.dump(bias(pairs), fh, indent=2)
