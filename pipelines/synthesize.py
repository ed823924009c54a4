"""Stage ``synthesize``: agentic query synthesis with a teacher, a critic and a near-duplicate check.

``python -m pipelines.synthesize [--seeds data/seeds] [--out data/queries/synthetic.jsonl]
[--metrics metrics/synthesize.json]``

For each (domain, category) target in ``params.yaml: synthesize`` and each of ``per_category`` slots:

1. The teacher (``llm.roles.teacher``) drafts a task by calling ``submit_task`` with the request, its
   category and domain, small starting files and shell checks (python3 stdlib, bash, coreutils; run in
   the sandbox with the workspace as cwd). Seed tasks of the category (others when it has few) are the
   few-shot examples. Arguments are validated; invalid answers are retried up to ``attempts`` times.
2. A draft whose request shares too many word 3-grams with a seed or an already accepted query is
   rejected (exact Jaccard of :func:`~pipelines.curation.minhash.shingle_set`, ``dup_threshold``).
3. The critic (``llm.roles.critic``) scores realism, specificity, verifiability and difficulty (1-5)
   by calling ``submit_scores``. The draft passes when its score (``score_rule``: the minimum of the
   four by default, so one strong dimension cannot hide an unverifiable task) reaches ``min_score``;
   otherwise the teacher rewrites it with the critique, up to ``max_rewrites`` times, each rewrite
   checked for duplicates and scored again. Still under the bar: rejected with the scores.

Accepted drafts become :class:`~pipelines.core.schema.Query` records (source ``synthetic``, id
``syn-<category>-<n>``, a ``tests`` verifier with the checks, the starting files inline) with the
drafts, scores and seed examples in provenance. Every rejection is counted by kind with its detail.
Writes ``data/queries/synthetic.jsonl`` (possibly empty) and ``metrics/synthesize.json``; logs an
MLflow run, with the seconds spent (in all and per model role) also in ``reports/runs/synthesize.json``.
With the embedded 135M model most drafts fail validation: the report says why.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from pipelines.core.console import main_guard
from pipelines.core.params import load_params
from pipelines.core.paths import repo_root
from pipelines.core.seeds import load_seed_tasks
from pipelines.llm.roles import model_for_role
from pipelines.synthesis.loop import synthesize

log = logging.getLogger("pipelines.synthesize")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.synthesize", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="data/seeds")
    parser.add_argument("--out", default="data/queries/synthetic.jsonl")
    parser.add_argument("--metrics", default="metrics/synthesize.json")
    args = parser.parse_args()
    root = repo_root()
    params = load_params()
    resolve = lambda p: Path(p) if Path(p).is_absolute() else root / p  # noqa: E731
    seeds = load_seed_tasks(resolve(args.seeds))
    teacher = model_for_role(params.llm, "teacher")
    critic = model_for_role(params.llm, "critic")
    from pipelines.core.tracking import stage_run

    started = time.perf_counter()
    with stage_run("synthesize", params.group("synthesize")) as run:
        report = synthesize(params.synthesize, teacher, critic, seeds, resolve(args.out), resolve(args.metrics),
                            root=root, tracker=run)
    reasons = ", ".join(f"{k} {v}" for k, v in report["rejections"].items() if v) or "none"
    log.info("%d of %d drafts accepted (%.0f%%) in %.0fs; rejected: %s; details in %s", report["accepted"],
             report["requested"], 100 * report["acceptance_rate"], time.perf_counter() - started, reasons,
             args.metrics)
    return 0


if __name__ == "__main__":
    main_guard(main)
