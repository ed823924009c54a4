"""Exact match of predictions against gold answers, after SQuAD-style normalisation."""
import json
import string
import sys

ARTICLES = {"a", "an", "the"}


def normalise(text):
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(w for w in text.split() if w not in ARTICLES)


def read(path, field):
    with open(path) as fh:
        return {r["id"]: r[field] for r in map(json.loads, fh) if r}


def main(pred_path, gold_path):
    preds, gold = read(pred_path, "prediction"), read(gold_path, "answer")
    hits = sum(1 for i, ans in gold.items() if i in preds and normalise(preds[i]) == normalise(ans))
    print(f"exact_match: {hits / len(gold):.3f}")
    print(f"missing: {sum(1 for i in gold if i not in preds)}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
