"""Does prompt length hurt our models? Statistics over eval_log.jsonl."""
import csv
import json
from statistics import fmean

BUCKETS = (("<512", 0, 512), ("512-2047", 512, 2048), ("2048-8191", 2048, 8192), ("8192+", 8192, float("inf")))


def read_log(path="eval_log.jsonl"):
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def bucket_means(rows):
    """{model: {bucket: (n, mean score)}} for buckets that have items."""
    out = {}
    for model in sorted({r["model"] for r in rows}):
        out[model] = {}
        for label, low, high in BUCKETS:
            scores = [r["score"] for r in rows if r["model"] == model and low <= r["prompt_tokens"] < high]
            if scores:
                out[model][label] = (len(scores), fmean(scores))
    return out


def write_buckets(means):
    with open("buckets.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["model", "bucket", "n", "mean_score"])
        for model, buckets in means.items():
            for label, (n, mean) in buckets.items():
                writer.writerow([model, label, n, f"{mean:.3f}"])


if __name__ == "__main__":
    write_buckets(bucket_means(read_log()))
