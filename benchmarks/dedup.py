"""Benchmark: near-duplicate detection of ``python -m pipelines.tools.dedup`` against datasketch and rensa.

    python benchmarks/dedup.py                      # 10,000 documents of 2,000 words
    python benchmarks/dedup.py --docs 2000 --words 500 --repeat 3

Builds a seeded synthetic corpus (words drawn from a Zipf-like vocabulary) with planted
near-duplicate pairs: ``--pairs`` copies with 1% word edits and as many with 3% edits
(substitutions, insertions, deletions), each replacing an unrelated document. It writes the
corpus as JSONL to a temp directory and times, on that one file, end to end from reading JSON:

* ours: the CLI run as a subprocess (interpreter start-up included), with all workers and with one,
  and the same library call in this process with one worker (what the curate stage pays);
* datasketch: ``MinHash(num_perm=128)`` (SHA1 hashing) fed word 3-gram shingles built in Python
  with ``update_batch``, and ``MinHashLSH(threshold)``; its LSH candidates are its answer;
* rensa: ``RMinHash`` (128 permutations) from the same shingles, ``RMinHashLSH`` with 16 bands,
  candidates kept when ``RMinHash.jaccard`` reaches the threshold.

Recall is the share of planted pairs reported, per edit rate. Precision is the share of reported
pairs that are planted or have a true word 3-gram Jaccard at or above the threshold. With 3-gram
shingles, 3% edits give a Jaccard near the 0.8 threshold, so recall there is partial for every
method; the table prints how many of those pairs truly reach the threshold.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
Pair = tuple[str, str]


@dataclass
class Corpus:
    """Documents with ids and the planted near-duplicate pairs, by edit rate."""

    ids: list[str]
    texts: list[str]
    planted: dict[str, list[Pair]]


def _pair(a: str, b: str) -> Pair:
    return (a, b) if a < b else (b, a)


def build_corpus(n_docs: int, n_words: int, n_pairs: int, seed: int, vocab_size: int = 50_000,
                 zipf_s: float = 1.1) -> Corpus:
    """A seeded corpus: Zipf-distributed words, plus ``n_pairs`` edited copies at each of 1% and 3%."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = ["".join(rng.choice(letters, n)) for n in rng.integers(2, 11, vocab_size)]
    weights = 1.0 / np.arange(1, vocab_size + 1) ** zipf_s
    cdf = np.cumsum(weights / weights.sum())
    draw = lambda n: np.minimum(np.searchsorted(cdf, rng.random(n)), vocab_size - 1)  # noqa: E731
    word_ids = draw(n_docs * n_words).reshape(n_docs, n_words)
    words = [list(itemgetter(*row)(vocab)) for row in word_ids.tolist()]
    n_pairs = min(n_pairs, n_docs // 4)
    order = rng.permutation(n_docs)
    planted: dict[str, list[Pair]] = {}
    ids = [f"doc-{i:06d}" for i in range(n_docs)]
    for k, rate in enumerate((0.01, 0.03)):
        sources = order[2 * k * n_pairs:(2 * k + 1) * n_pairs]
        targets = order[(2 * k + 1) * n_pairs:(2 * k + 2) * n_pairs]
        for src, dst in zip(sources.tolist(), targets.tolist()):
            doc = list(words[src])
            for _ in range(max(1, round(rate * n_words))):
                op, pos = rng.integers(3), int(rng.integers(len(doc)))
                new = vocab[int(draw(1)[0])]
                if op == 0:
                    doc[pos] = new
                elif op == 1:
                    doc.insert(pos, new)
                elif len(doc) > 1:
                    del doc[pos]
            words[dst] = doc
        planted[f"{rate:.0%}"] = [_pair(ids[s], ids[d]) for s, d in zip(sources.tolist(), targets.tolist())]
    return Corpus(ids, [" ".join(w) for w in words], planted)


def write_jsonl(corpus: Corpus, path: Path) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for id_, text in zip(corpus.ids, corpus.texts):
            fh.write(json.dumps({"id": id_, "text": text}) + "\n")


def read_jsonl(path: Path) -> Iterable[tuple[str, str]]:
    """(id, text) per line: the baselines read the same file as the CLI does."""
    with path.open("rb") as fh:
        for line in fh:
            obj = json.loads(line)
            yield obj["id"], obj["text"]


def shingles(text: str) -> list[str]:
    """Word 3-grams the usual Python way (lower-case, split on whitespace)."""
    tokens = text.lower().split()
    return list(map(" ".join, zip(tokens, tokens[1:], tokens[2:])))


def true_jaccard(a: str, b: str) -> float:
    sa, sb = set(shingles(a)), set(shingles(b))
    return len(sa & sb) / max(1, len(sa | sb))


def run_ours(path: Path, out: Path, threshold: float, workers: int) -> set[Pair]:
    """The CLI as a subprocess; every pair inside a reported cluster counts as reported."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "pipelines.tools.dedup", "--in", str(path), "--out", str(out),
           "--threshold", str(threshold), "--workers", str(workers)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"pipelines.tools.dedup failed ({proc.returncode}): {proc.stderr.strip()}")
    pairs: set[Pair] = set()
    for line in out.read_text().splitlines():
        members = json.loads(line)["cluster"]
        pairs.update(_pair(a, b) for i, a in enumerate(members) for b in members[i + 1:])
    return pairs


def run_ours_in_process(path: Path, threshold: float) -> set[Pair]:
    """The same work through the library in this process (no interpreter start-up), one worker."""
    sys.path.insert(0, str(REPO))
    from pipelines.tools.dedup import DedupConfig, find_clusters

    clusters, _ = find_clusters(DedupConfig(path, path.with_suffix(".unused"), threshold=threshold, workers=1))
    return {_pair(a, b) for members in clusters for i, a in enumerate(members) for b in members[i + 1:]}


def run_datasketch(path: Path, threshold: float) -> set[Pair]:
    """datasketch's usual pipeline: SHA1 MinHash over shingles, MinHashLSH, candidates as the answer."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    pairs: set[Pair] = set()
    for id_, text in read_jsonl(path):
        m = MinHash(num_perm=128)
        m.update_batch([s.encode("utf-8") for s in set(shingles(text))])
        pairs.update(_pair(id_, other) for other in lsh.query(m))
        lsh.insert(id_, m)
    return pairs


def run_rensa(path: Path, threshold: float, batch: int = 1000) -> set[Pair]:
    """rensa's RMinHash and RMinHashLSH over the same shingles, candidates verified by its jaccard."""
    from rensa import RMinHash, RMinHashLSH

    lsh = RMinHashLSH(threshold=threshold, num_perm=128, num_bands=16)
    ids: list[str] = []
    sketches: list[RMinHash] = []
    rows = iter(read_jsonl(path))
    while chunk := [row for _, row in zip(range(batch), rows)]:
        made = RMinHash.from_token_sets([shingles(text) for _, text in chunk], num_perm=128, seed=42)
        for (id_, _), m in zip(chunk, made):
            lsh.insert(len(ids), m)
            ids.append(id_)
            sketches.append(m)
    pairs: set[Pair] = set()
    for i, m in enumerate(sketches):
        for j in lsh.query(m):
            if j > i and m.jaccard(sketches[j]) >= threshold:
                pairs.add(_pair(ids[i], ids[j]))
    return pairs


@dataclass
class Row:
    name: str
    seconds: float
    pairs: set[Pair]


def timed(name: str, fn: Callable[[], set[Pair]], repeat: int) -> Row:
    """Best wall time of ``repeat`` runs (the machine may be shared), with the last run's pairs."""
    best, pairs = float("inf"), set()
    for _ in range(repeat):
        start = time.perf_counter()
        pairs = fn()
        best = min(best, time.perf_counter() - start)
    print(f"  {name}: {best:.2f}s", file=sys.stderr)
    return Row(name, best, pairs)


def report(corpus: Corpus, rows: list[Row], size_bytes: int, threshold: float) -> str:
    """The results table as text."""
    text_of = dict(zip(corpus.ids, corpus.texts))
    planted_all = {p for ps in corpus.planted.values() for p in ps}
    judged: dict[Pair, bool] = {}
    lines = [f"corpus: {len(corpus.ids)} documents, {size_bytes / 1e6:.1f} MB of JSONL"]
    for rate, ps in corpus.planted.items():
        js = np.array([true_jaccard(text_of[a], text_of[b]) for a, b in ps])
        lines.append(f"planted {rate} pairs: {len(ps)}, true 3-gram Jaccard mean {js.mean():.3f} min {js.min():.3f}, "
                     f"{(js >= threshold).mean():.1%} at or above {threshold}")
    ref = {r.name.split(" ")[0]: r.seconds for r in rows}
    head = (f"{'method':<30}{'time s':>8}{'docs/s':>10}{'MB/s':>8}{'rec 1%':>8}{'rec 3%':>8}"
            f"{'precision':>10}{'pairs':>7}{'vs datasketch':>15}{'vs rensa':>10}")
    lines += ["", head, "-" * len(head)]
    for row in rows:
        recall = {rate: len(row.pairs & set(ps)) / max(1, len(ps)) for rate, ps in corpus.planted.items()}
        for p in row.pairs - planted_all - judged.keys():
            judged[p] = true_jaccard(text_of[p[0]], text_of[p[1]]) >= threshold
        good = sum(1 for p in row.pairs if p in planted_all or judged[p])
        precision = good / len(row.pairs) if row.pairs else float("nan")
        ratio = lambda base: f"{ref[base] / row.seconds:.1f}x" if base in ref else "-"  # noqa: E731
        lines.append(f"{row.name:<30}{row.seconds:>8.2f}{len(corpus.ids) / row.seconds:>10.0f}"
                     f"{size_bytes / 1e6 / row.seconds:>8.1f}{recall['1%']:>8.3f}{recall['3%']:>8.3f}"
                     f"{precision:>10.3f}{len(row.pairs):>7}{ratio('datasketch'):>15}{ratio('rensa'):>10}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--docs", type=int, default=10_000, help="documents in the corpus")
    parser.add_argument("--words", type=int, default=2_000, help="words per document")
    parser.add_argument("--pairs", type=int, default=200, help="planted pairs at each edit rate (1%% and 3%%)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed")
    parser.add_argument("--threshold", type=float, default=0.8, help="Jaccard threshold for every method")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                        else os.cpu_count() or 1,
                        help="workers for our CLI (a one-worker run is timed as well)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per method; the best time is reported")
    parser.add_argument("--skip", default="", help="comma-separated methods to skip: datasketch, rensa")
    parser.add_argument("--keep", type=Path, default=None, help="write the corpus here instead of a temp dir")
    args = parser.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    start = time.perf_counter()
    corpus = build_corpus(args.docs, args.words, args.pairs, args.seed)
    print(f"built corpus in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="dedup-bench-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path, out = folder / "corpus.jsonl", folder / "clusters.jsonl"
        write_jsonl(corpus, path)
        size = path.stat().st_size
        rows = [timed(f"ours ({args.workers} workers)", lambda: run_ours(path, out, args.threshold, args.workers),
                      args.repeat)]
        if args.workers != 1:
            rows.append(timed("ours (1 worker)", lambda: run_ours(path, out, args.threshold, 1), args.repeat))
        rows.append(timed("ours (in-process, 1 worker)", lambda: run_ours_in_process(path, args.threshold),
                          args.repeat))
        if "datasketch" not in skip:
            rows.append(timed("datasketch", lambda: run_datasketch(path, args.threshold), args.repeat))
        if "rensa" not in skip:
            rows.append(timed("rensa", lambda: run_rensa(path, args.threshold), args.repeat))
        print(report(corpus, rows, size, args.threshold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
