"""Stage ``curate``: from collected trajectories to the few samples worth training on.

``python -m pipelines.curate [--in data/trajectories ...] [--out data/sft] [--metrics metrics/curate.json]``

``--in`` (repeatable) is a JSONL file, a folder of JSONL/Parquet/Arrow files, or a Hugging Face dataset id
(``owner/name``, ``hf:owner/name[:split]``, loaded with ``datasets`` from the hub or its cache); tables are
read so that every record renders the same tokens as its JSONL form (:mod:`pipelines.core.datasets`).

The funnel (:mod:`pipelines.curation.funnel`), in order; each step's drops are listed with reasons
in ``data/sft/report.json``:

1. schema      records that do not validate as trajectories
2. verified    episodes that did not pass verification (``curate.admit_unverified`` admits them; a
               trajectory from ``limi import`` without a verdict counts as not passed) or whose teacher
               is not in ``curate.teachers`` (when set) or is in ``curate.drop_teachers``
3. exact_dup   same normalised (query, final diff) key: one kept per group
4. near_dup    MinHash/LSH clusters over query + final diff (not the transcript: file dumps dominate
               transcripts and cause false matches); kept: the better-verified, then the shorter
5. decontam    13-gram overlap with any eval task (built-in suite, HumanEval, AgencyBench files),
               case and punctuation folded, and the same pull request (``meta.pr``) as an eval task
6. hidden_material
               one 13-gram shared by the messages (contents, tool-call arguments) or final diff and
               those tasks' hidden material: solution files, check commands, rubric criteria, gold
               patches, HumanEval's canonical solutions and tests (texts under 13 words cannot match)
7. length      over ``curate.max_length`` tokens with the student's tokenizer and chat template
               (counted and dropped, never truncated)
8. tool_types  a tool argument whose JSON type disagrees with the rest of the set (Arrow needs one)
9. selection   ``curate.target_size`` samples, stratified over (domain, category), ranked within a
               stratum by verifier score, then fewer rounds, then fewer tokens; deterministic per seed

Writes ``data/sft/train.jsonl``, ``data/sft/report.json``, ``metrics/curate.json`` (a function of the
inputs and params: no timings); logs an MLflow run, the step timings to ``reports/runs/curate.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from pipelines.core.console import main_guard
from pipelines.core.datasets import DataSource, resolve_sources
from pipelines.core.errors import UserError
from pipelines.core.io import atomic_write_json, atomic_write_text
from pipelines.core.params import Params, load_params
from pipelines.core.paths import repo_root
from pipelines.curation.decontam import EvalIndex, HiddenIndex, eval_texts, hidden_material
from pipelines.curation.funnel import FUNNEL, Sample, alive, funnel_report, load_samples, run_funnel, student_tokenizer

log = logging.getLogger("pipelines.curate")


def curate(params: Params, root: Path, inputs: list[Path | DataSource], out_dir: Path, metrics_file: Path | None,
           tokenizer=None, tracker=None) -> dict[str, Any]:
    """Run the funnel over ``inputs``; write ``train.jsonl`` and ``report.json`` under ``out_dir`` and the funnel
    counts to ``metrics_file``; log to ``tracker`` (a StageRun) if given. Returns the report.

    Raises UserError when there is nothing to read or a step leaves no sample (report.json is written first).
    """
    started = time.perf_counter()
    c = params.curate
    if not inputs:
        raise UserError("curate: no trajectory files found; run the collect stage first (dvc repro collect)")
    samples = load_samples(inputs, root)
    if not samples:
        names = ", ".join(i.name if isinstance(i, DataSource) else str(i) for i in inputs)
        raise UserError(f"curate: {names} hold no trajectories; run collect first")
    if tokenizer is None:
        tokenizer = student_tokenizer(params, root)
    evals = EvalIndex(eval_texts(c.decontam, root), c.decontam.ngram, c.decontam.min_matches)
    hidden = HiddenIndex(hidden_material(c.decontam, root), c.decontam.ngram)
    funnel, seconds = run_funnel(samples, c, evals, tokenizer, hidden)
    report = funnel_report(samples, funnel, len(evals), len(hidden))
    kept = write_outputs(samples, report, out_dir, metrics_file)
    if tracker is not None:
        tracker.log_metrics({**funnel, "kept": len(kept),
                             **{f"kept_source_{k}": v for k, v in report["kept_by_source"].items() if k}})
        for source in inputs:
            path = source.path if isinstance(source, DataSource) else source
            if path is not None:  # a hub dataset has no file to hash; its id is in the report
                tracker.log_dataset(path, context="input")
        tracker.log_dataset(out_dir / "train.jsonl", context="output")
        tracker.log_artifact(out_dir / "report.json")
        tracker.record_timings({"seconds": round(time.perf_counter() - started, 3), "step_seconds": seconds},
                               root=root)
    return report


def write_outputs(samples: list[Sample], report: dict[str, Any], out_dir: Path,
                  metrics_file: Path | None) -> list[Sample]:
    """Write report.json, then (unless the funnel emptied) train.jsonl and the metrics; return the kept samples."""
    funnel = report["funnel"]
    kept = alive(samples)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "report.json", report)  # written even when the funnel empties, to read why
    if not kept:
        emptied = next(name for name in FUNNEL if funnel[f"after_{name}"] == 0)
        raise UserError(f"curate: 0 of {len(samples)} trajectories left after the '{emptied}' step; "
                        f"see {out_dir / 'report.json'}")
    atomic_write_text(out_dir / "train.jsonl", "".join(
        json.dumps(s.train_record(), ensure_ascii=False) + "\n" for s in kept))
    if metrics_file is not None:
        atomic_write_json(metrics_file, {**funnel, "kept": len(kept), "kept_tokens": sum(s.tokens for s in kept),
                                         "kept_by_source": report["kept_by_source"]})
    return kept


def input_files(given: list[str], root: Path) -> list[DataSource]:
    """The trajectory sources of ``--in`` values, in order: a directory's ``*.jsonl``, ``*.parquet`` and
    ``*.arrow`` files sorted by name, a file as it is, a Hugging Face dataset id; relative paths are from the
    project root (collect's output and a ``limi import`` file, say)."""
    return resolve_sources(given, root)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.curate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--in", dest="inputs", action="append", default=None,
                        help="trajectory directory (every *.jsonl, *.parquet and *.arrow in it), one such file, "
                             "or a Hugging Face dataset id (owner/name[:split]); repeat it to read several, in "
                             "order (default: data/trajectories)")
    parser.add_argument("--out", default="data/sft", help="output directory (default: data/sft)")
    parser.add_argument("--metrics", default="metrics/curate.json", help="funnel metrics file")
    args = parser.parse_args()
    root = repo_root()
    params = load_params()
    inputs = input_files(args.inputs or ["data/trajectories"], root)
    out = Path(args.out) if Path(args.out).is_absolute() else root / args.out
    from pipelines.core.tracking import stage_run

    with stage_run("curate", params.group("curate")) as run:
        report = curate(params, root, inputs, out, root / args.metrics, tracker=run)
    f = report["funnel"]
    log.info("curated %d of %d trajectories into %s", f["after_selection"], f["input"], out / "train.jsonl")
    return 0


if __name__ == "__main__":
    main_guard(main)
