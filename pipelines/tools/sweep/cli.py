"""Sample-efficiency sweeps: how few training samples are enough, does the tuned model beat the untuned one
(and from how many samples), and does the teacher matter?

    python -m pipelines.tools.sweep [run] [--sizes 4,8,16,32,78] [--seeds 0,1,2] [--teachers all,replay,embedded]
                                          [--measures tool_call_validity,first_call_validity,finish_rate,easy:ftfc]
    python -m pipelines.tools.sweep report [--sweep ID] [--measures ...]
    make sweep SWEEP_ARGS="--sizes 4,8,16 --seeds 0,1,2"

``run`` queues one DVC experiment per (teacher subset, size, seed) point of the curate -> sft -> eval
tail, ``dvc exp run --queue --downstream curate -n NAME -S curate.target_size=N -S curate.seed=S
-S sft.seed=S -S curate.teachers=[...]``, starts the queue (``dvc queue start``, one job at a time by
default), waits for it and writes the report. ``--downstream`` starts each experiment at curate: DVC
checks the stages before it out of the cache as ``dvc.lock`` records them (models/base, the collected
trajectories) and never re-runs them, even when their code changed since; the sweep refuses to start
when those outputs are not in the DVC cache. The seed is both the curation seed (which samples a
stratum gives first) and the fine-tuning seed (LoRA initialisation, data order).

Sizes above the number of curate-eligible trajectories of a subset (those left after the funnel's
filters, before selection, counted here by running the funnel) are capped at that number; a subset
with none is skipped with a message. Size 0 is the untuned model: it queues no experiment (the report's
N = 0 rows come from the experiments that evaluated the untuned model). A subset is ``all`` (every
teacher) or teacher names joined by ``+`` as trajectories record them (``replay``, ``embedded``,
``replay+embedded``).

By default every experiment evaluates the untuned model(s) of eval.models next to the tuned one
(``--baseline every``): the eval's paired interval of tuned - untuned (the same tasks drawn for both in
every resample) exists only within one experiment, and the verdict "above zero" requires every seed's
paired interval above zero, so every seed needs its own. ``--baseline once`` evaluates it in the first
experiment only, which saves one untuned eval per experiment but leaves the other seeds without a paired
interval (the report says how many seeds had one). Experiments never register a champion
(``eval.register_champion=false``).

The experiments' eval runs one round (``--rounds 1``, the default; ``--rounds 0`` keeps params.yaml's
eval.rounds): FTFC and first-call validity are first-round measures, and the feedback rounds would about
double each experiment's eval time, spent on the trials that fail. The report states R.

Measures (``--measures``): besides the main metric (eval.main_metric), the report has a table and the
plot a panel per measure: ``metric`` (the eval's overall numbers) or ``suite:metric`` (one suite's, e.g.
``easy:ftfc``), the metric one of the eval's rates (ftfc, sr_at_r, rc_at_r, agencybench_average,
pass_at_k, pass_hat_k, tool_call_validity, first_call_validity, finish_rate). The sweep record keeps
them, so ``report`` draws the same ones unless given ``--measures``. A suite no experiment evaluated
gets a note instead of a table.

MLflow: a ``sweep`` run per sweep, a child run per experiment (params ``sweep.size``, ``sweep.seed``,
``sweep.teachers``), and under it the stage runs DVC starts, tagged ``sweep.id``/``sweep.size``/
``sweep.seed``/``sweep.teachers`` and ``dvc.experiment``. ``report`` reads the experiments'
metrics from ``dvc exp show --json``, writes ``reports/sweep.md`` and ``plots/sweep.png`` (a panel per
measure, the main metric first: mean and spread over seeds against sample count, N = 0 the untuned
model, one line per teacher subset, with each seed's 95% eval interval) and logs both to the sweep run.
Between sizes, a difference no larger than the spread over seeds is no significant difference; against
the untuned model, the eval's paired interval decides (above zero, or no significant difference).
"""

from __future__ import annotations

import argparse
import time
from typing import Iterable

from pipelines.core.paths import repo_root
from pipelines.tools.sweep.measures import DEFAULT_MEASURES, parse_measures
from pipelines.tools.sweep.plan import DEFAULT_SIZES, parse_ints, parse_subsets
from pipelines.tools.sweep.queue import run_sweep
from pipelines.tools.sweep.record import save_record
from pipelines.tools.sweep.report import report


def main(argv: Iterable[str] | None = None) -> int:
    """``run`` (the default) or ``report``; the exit status: 1 when an experiment failed."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.tools.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="queue and run the sweep, then write the report (the default)",
                         description="Queue one DVC experiment per (teacher subset, size, seed), run the queue, "
                                     "wait, write reports/sweep.md and plots/sweep.png.")
    rep = sub.add_parser("report", help="(re)write the report of a finished sweep",
                         description="Collect a sweep's results from `dvc exp show --json`, write reports/sweep.md "
                                     "and plots/sweep.png and log both to the sweep's MLflow run.")
    for p in (parser, run):
        p.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                       help="curate.target_size values (default: %(default)s); each is capped at the number of "
                            "curate-eligible trajectories of the teacher subset, with a note; 0 (the untuned "
                            "model) queues nothing, the report shows it as N = 0 anyway")
        p.add_argument("--seeds", default="0,1,2", help="seeds, each used as curate.seed and sft.seed "
                                                      "(default: %(default)s)")
        p.add_argument("--teachers", default="all",
                       help="teacher subsets, comma-separated: 'all' or teacher names joined by '+' as the "
                            "trajectories record them, e.g. all,replay,embedded (default: %(default)s); a subset "
                            "without eligible trajectories is skipped with a message")
        p.add_argument("--jobs", type=int, default=1, help="experiments at once (default: 1; more only with the "
                                                           "cores and memory for several trainings)")
        p.add_argument("--baseline", choices=("once", "every"), default="every",
                       help="evaluate the untuned model(s) of eval.models in every experiment (default: every seed "
                            "gets its paired interval against it) or in the first only (cheaper; the other "
                            "seeds then have no paired verdict)")
        p.add_argument("--suites", default="easy",
                       help="evaluate the experiments on these eval.suites entries only, comma-separated, or 'all' "
                            "(default: %(default)s: the measures the sweep answers with, and each experiment's "
                            "eval stays within a few minutes on a CPU)")
        p.add_argument("--rounds", type=int, default=1,
                       help="eval.rounds of the experiments, 0 = params.yaml's (default: %(default)s: FTFC and "
                            "first-call validity are first-round measures; further rounds of feedback would about "
                            "double each experiment's eval time, spent on the trials that fail)")
        p.add_argument("--dry-run", action="store_true", help="print the dvc commands and exit")
        p.add_argument("--no-wait", action="store_true", help="queue and exit; start the queue yourself "
                                                              "(dvc queue start) and run `report` afterwards")
    for p in (parser, run, rep):
        p.add_argument("--measures", default=None,
                       help="what to tabulate and draw besides the main metric, comma-separated: 'metric' (overall) "
                            "or 'suite:metric' (one eval suite); the metric one of the eval's rates (default: "
                            + (f"{DEFAULT_MEASURES}" if p is not rep else "the sweep's own") + ")")
    rep.add_argument("--sweep", help="the sweep id (default: the latest)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if getattr(args, "rounds", 0) < 0:
        parser.error("--rounds must be 0 (params.yaml's) or more")
    measures = parse_measures(args.measures) if args.measures else None
    root = repo_root()
    if args.command == "report":
        summary = report(root, args.sweep, measures=measures)
        print(f"wrote {summary['report']} and {summary['plot']}")
        return 0
    started = time.monotonic()
    record = run_sweep(root, parse_subsets(args.teachers), parse_ints(args.sizes, "sizes"),
                       parse_ints(args.seeds, "seeds"), jobs=args.jobs, baseline=args.baseline,
                       measures=measures or parse_measures(DEFAULT_MEASURES),
                       suites=None if args.suites == "all" else [s.strip() for s in args.suites.split(",") if s.strip()],
                       rounds=args.rounds or None, dry_run=args.dry_run,
                       wait=not args.no_wait)
    if args.dry_run or args.no_wait:
        if args.no_wait:
            print(f"queued {len(record['points'])} experiments of {record['id']}; `dvc queue start`, then "
                  f"`python -m pipelines.tools.sweep report --sweep {record['id']}`")
        return 0
    record["wall_seconds"] = round(time.monotonic() - started, 1)
    save_record(root, record)
    summary = report(root, record["id"])
    failed = [p["name"] for p in record["points"] if p.get("status") != "Success"]
    print(f"sweep {record['id']}: {len(record['points']) - len(failed)} of {len(record['points'])} experiments "
          f"succeeded in {record['wall_seconds'] / 60:.1f} min; wrote {summary['report']} and {summary['plot']}")
    return 1 if failed else 0
