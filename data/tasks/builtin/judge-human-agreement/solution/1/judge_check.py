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


if __name__ == "__main__":
    write_agreement(read_labels())
