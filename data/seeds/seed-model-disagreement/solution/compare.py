"""Accuracy and McNemar's test for two models on the same questions; writes summary.json."""
import json


def answers(path):
    with open(path) as fh:
        return {r["qid"]: r["answer"].strip().lower() for r in map(json.loads, fh)}


gold, a, b = answers("gold.jsonl"), answers("answers_a.jsonl"), answers("answers_b.jsonl")
cells = {"both_correct": 0, "only_a": 0, "only_b": 0, "both_wrong": 0}
for qid, truth in gold.items():
    ok_a, ok_b = a.get(qid) == truth, b.get(qid) == truth
    key = "both_correct" if ok_a and ok_b else "only_a" if ok_a else "only_b" if ok_b else "both_wrong"
    cells[key] += 1
discordant = cells["only_a"] + cells["only_b"]
summary = {
    "accuracy_a": round((cells["both_correct"] + cells["only_a"]) / len(gold), 3),
    "accuracy_b": round((cells["both_correct"] + cells["only_b"]) / len(gold), 3),
    **cells,
    "mcnemar_chi2": round((abs(cells["only_a"] - cells["only_b"]) - 1) ** 2 / discordant, 3) if discordant else 0.0,
}
with open("summary.json", "w") as out:
    json.dump(summary, out, indent=2)
