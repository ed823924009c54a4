"""Sample-efficiency sweeps: how few training samples are enough, and does the teacher matter?

    python -m pipelines.tools.sweep [run] [--sizes 4,8,16,32,78] [--seeds 0,1] [--teachers all,replay,embedded]
    python -m pipelines.tools.sweep report [--sweep ID]
    make sweep SWEEP_ARGS="--sizes 4,8,16 --seeds 0,1"

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
with none is skipped with a message. A subset is ``all`` (every teacher) or teacher names joined by
``+`` as trajectories record them (``replay``, ``embedded``, ``replay+embedded``).

The untuned baseline of ``eval.models`` (entries without an adapter) does not depend on the sweep's
variables, so by default only the first experiment evaluates it (``--baseline every``: all do).
Experiments never register a champion (``eval.register_champion=false``).

MLflow: a ``sweep`` run per sweep, a child run per experiment (params ``sweep.size``, ``sweep.seed``,
``sweep.teachers``), and under it the stage runs DVC starts, tagged ``sweep.id``/``sweep.size``/
``sweep.seed``/``sweep.teachers`` and ``dvc.experiment``. ``report`` reads the experiments'
metrics from ``dvc exp show --json``, writes ``reports/sweep.md`` and ``plots/sweep.png`` (the main
eval metric, mean and spread over seeds, against sample count, one line per teacher subset, with each
seed's 95% eval interval) and logs both to the sweep run. Between sizes, a difference no larger than the
spread over seeds is no significant difference; against the untuned model, the eval's paired interval
decides (above zero, or no significant difference).
"""

from __future__ import annotations

import argparse
import time
from typing import Iterable

from pipelines.core.paths import repo_root
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
                            "curate-eligible trajectories of the teacher subset, with a note")
        p.add_argument("--seeds", default="0,1", help="seeds, each used as curate.seed and sft.seed "
                                                      "(default: %(default)s)")
        p.add_argument("--teachers", default="all",
                       help="teacher subsets, comma-separated: 'all' or teacher names joined by '+' as the "
                            "trajectories record them, e.g. all,replay,embedded (default: %(default)s); a subset "
                            "without eligible trajectories is skipped with a message")
        p.add_argument("--jobs", type=int, default=1, help="experiments at once (default: 1; more only with the "
                                                           "cores and memory for several trainings)")
        p.add_argument("--baseline", choices=("once", "every"), default="once",
                       help="evaluate the untuned model(s) of eval.models in the first experiment only (default) "
                            "or in every experiment")
        p.add_argument("--dry-run", action="store_true", help="print the dvc commands and exit")
        p.add_argument("--no-wait", action="store_true", help="queue and exit; start the queue yourself "
                                                              "(dvc queue start) and run `report` afterwards")
    rep.add_argument("--sweep", help="the sweep id (default: the latest)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    root = repo_root()
    if args.command == "report":
        summary = report(root, args.sweep)
        print(f"wrote {summary['report']} and {summary['plot']}")
        return 0
    started = time.monotonic()
    record = run_sweep(root, parse_subsets(args.teachers), parse_ints(args.sizes, "sizes"),
                       parse_ints(args.seeds, "seeds"), jobs=args.jobs, baseline=args.baseline,
                       dry_run=args.dry_run, wait=not args.no_wait)
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
