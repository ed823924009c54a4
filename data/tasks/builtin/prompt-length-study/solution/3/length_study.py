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


def average_ranks(values):
    """Ranks 1..n, tied values sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(xs, ys):
    """Pearson correlation of the average ranks."""
    rx, ry = average_ranks(xs), average_ranks(ys)
    mx, my = fmean(rx), fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    var = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / var


def correlations(rows):
    out = {}
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model]
        out[model] = round(spearman([r["prompt_tokens"] for r in mine], [r["score"] for r in mine]), 3)
    return out


def findings(means, rho):
    models = sorted(means)
    lines = ["# Prompt length and eval score", "", "Mean score by prompt length (tokens):", "",
             "| bucket | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for label, _, _ in BUCKETS:
        cells = [f"{means[m][label][1]:.3f}" if label in means[m] else "-" for m in models]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    for model in models:
        lines.append(f"{model}: {'degrades' if rho[model] < -0.3 else 'stable'}")
    lines += ["", f"most robust: {max(models, key=lambda m: rho[m])}", "",
              "Spearman correlations between prompt length and score: "
              + ", ".join(f"{m} {rho[m]:+.3f}" for m in models)
              + ". A model counts as degrading when the correlation is below -0.3; the bucket means show where "
                "the drop happens, and with about fifteen items per bucket small differences are noise."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    rows = read_log()
    means = bucket_means(rows)
    write_buckets(means)
    rho = correlations(rows)
    with open("correlation.json", "w") as fh:
        json.dump(rho, fh, indent=2)
    with open("findings.md", "w") as fh:
        fh.write(findings(means, rho))
