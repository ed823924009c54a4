"""Stage ``pr_queries``: LIMI's PR path, from mined pull requests to developer-style queries.

``python -m pipelines.pr_queries [--prs data/prs/prs.jsonl] [--out data/queries/pr.jsonl]``

1. Filters (``params.yaml: pr_queries``; :mod:`pipelines.prs.filters`), each drop counted by reason:
   the later share of a repository's PRs by creation date (``earlier_share``), binary-only changes,
   docs-only PRs (``drop_docs_only``), PRs touching Markdown (``drop_markdown``), reverts, bot
   authors, more than one file (``single_file``), merged before the temporal ``cutoff``, a patch over
   ``max_patch_tokens`` (counted with the ``tokenizer``, by default the student's base model's), PRs
   not drawn in the seeded per-repository sample (``per_repo_sample``), a per-repo cap.
2. The teacher (``llm.roles.teacher``; :mod:`pipelines.prs.queries`) writes the request a developer
   would type, from the title, body and file list only (never the patch's lines), plus the category,
   modified and related files, by calling a ``submit_query`` function whose arguments are validated.
   Invalid answers are retried; then the PR is skipped with the reason in the report, or, with
   ``fallback: template``, a plain request is composed from the title and body (marked
   ``writer: template`` in provenance).
3. LIMI's additions, when switched on: "You only need to modify <files>." (``modify_hint``) and, for
   a seeded share of the queries, a sentence allowing or forbidding installs (``install``).
4. The verifier (:mod:`pipelines.prs.verification`, chosen before the request is written): for a PR that
   changes tests and code, its tests run at the base with the test part applied and after the whole patch,
   in a cached virtual environment of the repository's declared dependencies (``tests``); the tests that
   fail before and pass after (FAIL_TO_PASS) and those that pass both times (PASS_TO_PASS) make a ``tests``
   verifier with the test part hidden; otherwise the judge compares the agent's diff with the gold patch
   (``judge.pass_threshold``). Nothing of either is shown to the agent. The workspace is the repository at
   the PR's base commit. Provenance names ``repo``, ``pr`` and ``verifier_reason``.

``preset: limi`` sets the paper's values for every key the group leaves unset.

Writes ``data/queries/pr.jsonl`` and ``data/queries/pr_report.json``; logs an MLflow run.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from pipelines.core.console import main_guard
from pipelines.core.errors import ModelError
from pipelines.core.io import atomic_write_json, atomic_write_text
from pipelines.core.params import Params, load_params
from pipelines.core.paths import repo_root
from pipelines.llm.roles import model_for_role
from pipelines.prs.filters import apply_filters, patch_token_counter
from pipelines.prs.queries import write_queries
from pipelines.prs.records import read_prs

log = logging.getLogger("pipelines.pr_queries")


def pr_queries(params: Params, root: Path, prs_path: Path, out: Path, report_path: Path, tracker=None) -> dict:
    """Filter, ask the teacher, write queries and the report; returns the report."""
    p = params.pr_queries
    prs = read_prs(prs_path)
    count_tokens, counted_with = patch_token_counter(p, root)
    kept, dropped = apply_filters(prs, p, count_tokens)
    teacher = None
    if kept:
        try:
            teacher = model_for_role(params.llm, "teacher")
        except ModelError:
            if p.fallback != "template":
                raise
            log.warning("teacher unavailable; composing template queries")
    started = time.monotonic()
    batch = write_queries(kept, teacher, p, root)
    queries = batch.queries
    # counts only, keys sorted: the report is a function of the PRs, the params and the teacher's answers
    report = {"mined": len(prs), "patch_tokens": counted_with, "filtered": dict(sorted(dropped.items())),
              "kept_after_filters": len(kept), "queries": len(queries), "skipped_by_teacher": batch.skipped,
              "writers": dict(sorted(batch.writers.items())), "additions": _additions(queries, p),
              "verified_by": {"tests": batch.verified_by["tests"], "judge": batch.verified_by["judge"]},
              "judge_reasons": dict(sorted(batch.judge_reasons.items())),
              "fail_to_pass_tests": sum(len(q.verifier.fail_to_pass) for q in queries),
              "pass_to_pass_tests": sum(len(q.verifier.pass_to_pass) for q in queries)}
    atomic_write_text(out, "".join(q.model_dump_json() + "\n" for q in queries))
    atomic_write_json(report_path, report)
    if tracker is not None:
        tracker.log_metrics({"mined": len(prs), "kept_after_filters": len(kept), "queries": len(queries),
                             "teacher_failures": len(batch.skipped), "verified_by_tests": batch.verified_by["tests"],
                             "verified_by_judge": batch.verified_by["judge"]})
        tracker.log_artifact(report_path)
        tracker.record_timings({"seconds": round(time.monotonic() - started, 3),
                                "env_build_s": round(batch.seconds["env_s"], 3),
                                "pr_tests_s": round(batch.seconds["tests_s"], 3)}, root=root)
    return report


def _additions(queries: list, params) -> dict[str, int]:
    """How many queries got each of LIMI's additions (only those switched on)."""
    counts: dict[str, int] = {}
    if params.modify_hint:
        counts["modify_hint"] = sum(1 for q in queries if q.provenance.get("modify_hint"))
    if params.install.enabled:
        for choice in ("allow", "forbid"):
            counts[f"install_{choice}"] = sum(1 for q in queries if q.provenance.get("install_sentence") == choice)
        counts["install_none"] = sum(1 for q in queries if q.provenance.get("install_sentence") is None)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.pr_queries", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prs", default="data/prs/prs.jsonl")
    parser.add_argument("--out", default="data/queries/pr.jsonl")
    parser.add_argument("--report", default="data/queries/pr_report.json")
    args = parser.parse_args()
    root = repo_root()
    params = load_params()
    resolve = lambda p: Path(p) if Path(p).is_absolute() else root / p  # noqa: E731
    from pipelines.core.tracking import stage_run

    with stage_run("pr_queries", params.group("pr_queries")) as run:
        report = pr_queries(params, root, resolve(args.prs), resolve(args.out), resolve(args.report), tracker=run)
    log.info("%d PRs mined, %d past the filters (%s; patch tokens by %s), %d queries written (%s); verified by "
             "tests %d, by the judge %d", report["mined"], report["kept_after_filters"],
             report["filtered"] or "none filtered", report["patch_tokens"], report["queries"], report["writers"],
             report["verified_by"]["tests"], report["verified_by"]["judge"])
    return 0


if __name__ == "__main__":
    main_guard(main)
