"""Near-duplicate clusters of a JSONL file, streaming, on every core.

    python -m pipelines.tools.dedup --in docs.jsonl --out clusters.jsonl [--field text] [--id-field id]

Each input line is a JSON object with an id and a text; each output line is one cluster of
near-duplicate documents, ``{"cluster": [id, ...]}`` (two or more ids, in input order, clusters
ordered by their first member). Two documents are near-duplicates when the estimated Jaccard
similarity of their normalised word n-gram sets reaches ``--threshold``; clusters join them
transitively. See :mod:`pipelines.curation.minhash` (signatures) and :mod:`pipelines.curation.lsh`
(candidates, clusters) for the method.

The input is cut into byte ranges at line boundaries; worker processes read and hash their own
ranges, so the parent only ever holds ids and MinHash signatures, never texts. Bad input (invalid
JSON, a missing or mistyped field, a repeated id) stops the run with ``FILE:LINE: message`` and exit
status 2; the output file is written atomically, so it is either complete or untouched.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.core.console import interactive
from pipelines.core.errors import UserError
from pipelines.core.io import atomic_write_text
from pipelines.curation.lsh import LSHIndex, clusters_from_pairs
from pipelines.curation.minhash import minhash_signatures, process_pool

log = logging.getLogger("pipelines.tools.dedup")

_CHUNK_BYTES = 1 << 22  # one worker task: big enough to amortise the hand-off, small enough to balance cores
_LOG_EVERY_S = 10.0


@dataclass(frozen=True)
class DedupConfig:
    """What to read, how to compare, and where to write."""

    in_path: Path
    out_path: Path
    field: str = "text"
    id_field: str = "id"
    threshold: float = 0.8
    num_perm: int = 128
    ngram: int = 3
    seed: int = 1
    workers: int = 1

    def validate(self) -> None:
        """Raise :class:`UserError` naming the first setting that cannot work."""
        if not 0.0 < self.threshold <= 1.0:
            raise UserError(f"--threshold must be in (0, 1], got {self.threshold}")
        if not 2 <= self.num_perm <= 4096:
            raise UserError(f"--num-perm must be between 2 and 4096, got {self.num_perm}")
        if self.ngram < 1:
            raise UserError(f"--ngram must be at least 1, got {self.ngram}")
        if self.workers < 1:
            raise UserError(f"--workers must be at least 1, got {self.workers}")
        if not self.in_path.exists():
            raise UserError(f"{self.in_path}: no such file")
        if not self.in_path.is_file():
            raise UserError(f"{self.in_path}: not a file")


@dataclass
class DedupSummary:
    """Counts of one run, logged at the end and returned to callers."""

    documents: int = 0
    bytes: int = 0
    candidate_pairs: int = 0
    duplicate_pairs: int = 0
    clusters: int = 0
    clustered_documents: int = 0
    seconds: float = 0.0


@dataclass
class _Chunk:
    """What a worker sends back for one byte range: ids and signatures, or the first bad line."""

    ids: list[Any] = field(default_factory=list)
    signatures: np.ndarray | None = None
    doc_lines: list[int] = field(default_factory=list)  # 1-based line of each document within the range
    lines: int = 0
    error: tuple[int, str] | None = None


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # respects taskset and container CPU sets
    except AttributeError:
        return os.cpu_count() or 1


def line_ranges(path: Path, chunk_bytes: int | None = None) -> list[tuple[int, int]]:
    """Byte ranges ``[start, stop)`` of about ``chunk_bytes`` covering ``path``, cut after newlines."""
    chunk_bytes = chunk_bytes or _CHUNK_BYTES
    size = path.stat().st_size
    bounds = [0]
    with path.open("rb") as fh:
        while bounds[-1] + chunk_bytes < size:
            fh.seek(bounds[-1] + chunk_bytes)
            fh.readline()  # run on to the end of the line that straddles the cut
            if fh.tell() >= size:
                break
            bounds.append(fh.tell())
    bounds.append(size)
    return list(zip(bounds[:-1], bounds[1:]))


def _get(obj: dict[str, Any], name: str) -> Any:
    """``obj[name]``, or a dotted path into nested objects (``meta.query``); KeyError if absent."""
    if name in obj:
        return obj[name]
    value: Any = obj
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(name)
        value = value[part]
    return value


def _parse_line(line: bytes, text_field: str, id_field: str) -> tuple[Any, str]:
    """The id and text of one JSON line; ValueError with a short reason when it has none."""
    try:
        obj = json.loads(line)
    except UnicodeDecodeError:
        raise ValueError("not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    try:
        id_ = _get(obj, id_field)
    except KeyError:
        raise ValueError(f"missing id field {id_field!r}") from None
    if isinstance(id_, bool) or not isinstance(id_, (str, int)):
        raise ValueError(f"id field {id_field!r} must be a string or an integer, got {type(id_).__name__}")
    try:
        text = _get(obj, text_field)
    except KeyError:
        raise ValueError(f"missing text field {text_field!r}") from None
    if not isinstance(text, str):
        raise ValueError(f"text field {text_field!r} must be a string, got {type(text).__name__}")
    return id_, text


def _hash_range(path: str, start: int, stop: int, cfg: DedupConfig) -> _Chunk:
    """Read lines ``[start, stop)`` of ``path`` and hash them (runs in a worker process)."""
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(stop - start)
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the range ends with a newline: no line after it
    out = _Chunk(lines=len(lines))
    texts: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue  # blank lines carry no document
        try:
            id_, text = _parse_line(line, cfg.field, cfg.id_field)
        except ValueError as exc:
            out.error = (number, str(exc))
            return out
        out.ids.append(id_)
        out.doc_lines.append(number)
        texts.append(text)
    out.signatures = minhash_signatures(texts, num_perm=cfg.num_perm, ngram=cfg.ngram, seed=cfg.seed)
    return out


def _hash_range_task(args: tuple[str, int, int, DedupConfig]) -> _Chunk:
    return _hash_range(*args)


class _Progress:
    """A tqdm bar over input bytes on a terminal; a log line every few seconds elsewhere."""

    def __init__(self, total: int, name: str):
        self.total, self.done, self.docs = total, 0, 0
        self.start = self.last = time.monotonic()
        self.bar = None
        if interactive():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, leave=False)

    def update(self, nbytes: int, ndocs: int) -> None:
        self.done += nbytes
        self.docs += ndocs
        if self.bar is not None:
            self.bar.update(nbytes)
            self.bar.set_postfix(docs=self.docs, refresh=False)
            return
        now = time.monotonic()
        if now - self.last >= _LOG_EVERY_S:
            self.last = now
            log.info("%.0f%% of %.1f MB, %d documents (%.0fs)", 100 * self.done / max(self.total, 1),
                     self.total / 1e6, self.docs, now - self.start)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; workers just stop


def _start_pool(workers: int) -> Any:
    """A worker pool, or None when one process is enough."""
    return process_pool(workers, initializer=_ignore_sigint) if workers > 1 else None


def find_clusters(cfg: DedupConfig) -> tuple[list[list[Any]], DedupSummary]:
    """Near-duplicate clusters of ``cfg.in_path`` and the run's counts; UserError on bad input."""
    cfg.validate()
    started = time.monotonic()
    ranges = line_ranges(cfg.in_path)
    index = LSHIndex(cfg.threshold, cfg.num_perm)
    summary = DedupSummary(bytes=ranges[-1][1] if ranges else 0)
    seen: set[Any] = set()  # ids must be unique, or clusters could not name documents
    lines_before = 0
    tasks = [(str(cfg.in_path), start, stop, cfg) for start, stop in ranges]
    pool = _start_pool(min(cfg.workers, len(tasks)))
    progress = _Progress(summary.bytes, "dedup")
    try:
        results = pool.imap(_hash_range_task, tasks) if pool else map(_hash_range_task, tasks)
        for (start, stop), chunk in zip(ranges, results):
            if chunk.error is not None:
                number, message = chunk.error
                raise UserError(f"{cfg.in_path}:{lines_before + number}: {message}")
            for id_, number in zip(chunk.ids, chunk.doc_lines):
                if id_ in seen:
                    raise UserError(f"{cfg.in_path}:{lines_before + number}: duplicate id {id_!r}")
                seen.add(id_)
            index.add_batch(chunk.ids, chunk.signatures)
            lines_before += chunk.lines
            progress.update(stop - start, len(chunk.ids))
    finally:
        progress.close()
        if pool is not None:
            pool.terminate()  # done, or a bad line ended the loop early: stop the workers at once
    summary.documents = len(index)
    candidates = index.candidate_pairs()
    pairs, _ = index.verify_pairs(candidates)
    summary.candidate_pairs = len(candidates)
    clusters = clusters_from_pairs(index.ids, pairs)
    summary.duplicate_pairs = len(pairs)
    summary.clusters = len(clusters)
    summary.clustered_documents = sum(map(len, clusters))
    summary.seconds = time.monotonic() - started
    return clusters, summary


def write_clusters(path: Path, clusters: list[list[Any]]) -> None:
    """Write one ``{"cluster": [ids]}`` line per cluster, atomically (temp file beside it, then rename)."""
    atomic_write_text(path, "".join(json.dumps({"cluster": c}, ensure_ascii=False) + "\n" for c in clusters))


def build_parser() -> argparse.ArgumentParser:
    """The command line: every option with its default and meaning."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.tools.dedup",
        description="Find clusters of near-duplicate documents in a JSONL file with MinHash LSH and write one "
                    "JSON line per cluster of two or more documents: {\"cluster\": [ids...]}. Texts are compared "
                    "as sets of word n-grams after case folding and removing punctuation.",
        epilog="Exit status: 0 on success, 2 on bad input or settings (the message names the file and line; "
               "the output is then left as it was), 130 when interrupted.",
    )
    parser.add_argument("--in", dest="in_path", type=Path, required=True, metavar="FILE.jsonl",
                        help="input: one JSON object per line with an id and a text field; blank lines are skipped")
    parser.add_argument("--out", dest="out_path", type=Path, required=True, metavar="FILE.jsonl",
                        help="output: one {\"cluster\": [ids...]} line per cluster (ids in input order), "
                             "written atomically; empty when there are no duplicates")
    parser.add_argument("--field", default="text", metavar="NAME",
                        help="the text field; a dotted path such as query.text reaches into objects "
                             "(default: %(default)s)")
    parser.add_argument("--id-field", default="id", metavar="NAME",
                        help="the id field, a string or integer unique within the file; dotted paths work too "
                             "(default: %(default)s)")
    parser.add_argument("--threshold", type=float, default=0.8, metavar="J",
                        help="minimum estimated Jaccard similarity of two documents' word n-gram sets for them to "
                             "count as near-duplicates, in (0, 1] (default: %(default)s)")
    parser.add_argument("--num-perm", type=int, default=128, metavar="N",
                        help="MinHash signature length: larger is more accurate and slower; the estimate's error "
                             "is about sqrt(J(1-J)/N) (default: %(default)s)")
    parser.add_argument("--ngram", type=int, default=3, metavar="N",
                        help="words per shingle (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1,
                        help="hash seed; the same seed, settings and input always give the same clusters "
                             "(default: %(default)s)")
    parser.add_argument("--workers", type=int, default=_available_cpus(), metavar="N",
                        help="processes that read and hash the input (default: the CPUs this process may use, "
                             "here %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse options, find clusters, write them; 2 on bad input, 130 on Ctrl-C."""
    args = build_parser().parse_args(argv)
    # the same line format as pipelines.core.console, without its heavier imports: this tool starts often
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    cfg = DedupConfig(**vars(args))
    try:
        clusters, summary = find_clusters(cfg)
        write_clusters(cfg.out_path, clusters)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.filename or cfg.in_path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    log.info("%d documents (%.1f MB), %d candidate pairs, %d near-duplicate pairs, %d clusters with %d documents "
             "in %.2fs -> %s", summary.documents, summary.bytes / 1e6, summary.candidate_pairs,
             summary.duplicate_pairs, summary.clusters, summary.clustered_documents, summary.seconds, cfg.out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
