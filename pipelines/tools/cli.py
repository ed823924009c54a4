"""limi: one command for the pipeline's everyday work.

    limi run [STAGE ...] [--single-item]         reproduce the pipeline, or stages and what they need (dvc repro)
    limi show EPISODE_ID|FILE:LINE [--full]      read one episode: task, verdicts, every turn
    limi export hub|sharegpt|jsonl|mini-swe-agent --out DIR
                                                 curated trajectories for the Hub, LLaMA-Factory, mini-swe-agent or as JSONL
    limi import [FORMAT] PATH ... --out FILE     trajectories of other agent frameworks into the trajectory schema
    limi ui                                      the MLflow UI and a Prefect server (what `make ui` starts)

Every subcommand has its own --help. The stages keep their own entry points
(python -m pipelines.<stage>); `limi run` goes through DVC, which runs them when their inputs
changed. Bad input ends with one line naming the file and line, and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pipelines.core.console import main_guard
from pipelines.core.errors import UserError
from pipelines.core.paths import display_path, repo_root

RUN_HELP = """Reproduce the pipeline with DVC deciding what is stale: every stage of dvc.yaml, or the named
stages and every stage upstream of them (as `dvc repro STAGE` does; --single-item: the named stages
only, whose inputs must then exist). Stages run one at a time in DAG order through the project's DVC
runner, as the Prefect flow runs them, so dvc.lock is the record either way and a stage whose inputs
did not change is skipped.

Exit status: the failing stage's own (2 for bad input or params), 1 when DVC itself refused (an
unknown input, a lock held by another run), 0 when every stage went through."""

SHOW_HELP = """Print one episode: its task, the teacher or model under test, rounds, the first-round and final
verdicts with every check (name cut to one line, pass or fail, and how it was decided when recorded),
then every turn: the request, assistant text, tool calls with their arguments, tool results, and the
user's feedback rounds, labelled. Long tool outputs, arguments and the system prompt are cut to their
head and tail unless --full.

EPISODE_ID is an episode key (meta.episode_key), a prefix of one that no other key shares, or a task
id (meta.task_id: its first episode), looked up in data/trajectories/episodes.jsonl, then
data/eval/episodes.jsonl, then data/sft/train.jsonl. FILE:LINE reads that line of any file in the
trajectory schema (the public GAIR/LIMI dataset included)."""

EXPORT_HELP = """Write the curated trajectories (default data/sft/train.jsonl) in another tool's format.

  hub       a Hugging Face dataset folder: data/train-00000-of-00001.parquet and a README.md dataset
            card (license, configs, the curate report's funnel, token lengths, decontamination).
            Tool-call arguments and tools are JSON strings, so Arrow cannot merge the keys of
            different calls; json.loads them back. --push REPO_ID uploads the folder (needs HF_TOKEN
            and network access).
  sharegpt  LLaMA-Factory's ShareGPT form with tools: DIR/NAME.json and its entry in
            DIR/dataset_info.json (added to an existing one). Use it as `dataset: NAME` with
            `dataset_dir: DIR`.
  jsonl     DIR/NAME.jsonl: the records as the trajectory schema validates them, meta included.
  mini-swe-agent
            one DIR/ID/ID.traj.json per record (ID: its episode key) in mini-swe-agent's tool-call
            form (trajectory_format mini-swe-agent-1.1, arguments as JSON strings), and DIR/preds.json
            with each final diff. info.limi holds the task, episode key, source, domain, category,
            teacher and the verdict (passed), which `limi import` reads back.

The card describes the curate report beside the input (report.json) and metrics/curate.json when
they exist."""


IMPORT_HELP = """Read trajectories written by other agent frameworks into the trajectory schema, as one JSONL
file (written atomically) that curate, sft and `limi show` read. FORMAT is detected from each file
when left out (by name: .traj.json, .traj; else by shape); a folder is searched for the format's files
(without FORMAT, for *.traj.json and *.traj).

  mini-swe-agent  <instance>.traj.json: messages, info (exit_status, submission, model_stats)
  swe-agent       <instance>.traj: trajectory steps (thought, action, observation), history, info
  openhands       a JSON list of events, or evaluation rows with history (JSON or JSONL)
  limi            JSONL rows of messages and tools: the released LIMI/SII CLI data, this project's records
  sharegpt        LLaMA-Factory's ShareGPT with tools (what `limi export sharegpt` writes)

Shell actions become the bash tool's calls ({"command": ...}); file creation and string replacement
become write_file and str_replace, file views read_file, the end of the work finish. Actions with no
equivalent here are kept (SWE-agent's own commands as the bash commands it ran, other tools under
their names) and counted in meta.imported.unmapped_actions. meta.source is import:FORMAT and
meta.imported records the file, index (and line), model, exit status and verification.

Verification: only an explicit verdict counts: a resolved or pass flag in the source (info.resolved,
report.resolved, meta.passed) or an evaluation report (--resolved). An agent saying it submitted or
completed the task is not verification. Unverified records are kept out by curate unless
curate.admit_unverified is set; run curate on the file with `python -m pipelines.curate --in FILE`
(several --in are read in order)."""


# pipelines.tools.importers.FORMATS, named here so that `limi --help` does not import the readers
IMPORT_FORMATS = ("mini-swe-agent", "swe-agent", "openhands", "limi", "sharegpt")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="limi", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="reproduce the pipeline or named stages through DVC",
                         description=RUN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("stages", nargs="*", metavar="STAGE", help="stages of dvc.yaml (default: all)")
    run.add_argument("--single-item", action="store_true",
                     help="run only the named stages, not what they depend on (their inputs must exist)")
    run.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                     help="stop a stage (its whole process tree) that runs longer than this")

    show = sub.add_parser("show", help="print one episode: task, verdicts, every turn",
                          description=SHOW_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("episode", metavar="EPISODE_ID|FILE:LINE")
    show.add_argument("--full", action="store_true", help="print tool outputs, arguments and the system prompt whole")
    show.add_argument("--in", dest="files", action="append", type=Path, metavar="FILE",
                      help="look up EPISODE_ID in this file instead of the pipeline's (repeatable)")

    export = sub.add_parser("export", help="write the curated set for the Hub, LLaMA-Factory, mini-swe-agent or as JSONL",
                            description=EXPORT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("format", choices=("hub", "sharegpt", "jsonl", "mini-swe-agent"))
    export.add_argument("--in", dest="src", type=Path, default=None, metavar="FILE",
                        help="trajectories to export (default: data/sft/train.jsonl)")
    export.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write into (created if needed)")
    export.add_argument("--name", default=None,
                        help="sharegpt: the dataset's name in dataset_info.json and its file name; jsonl: the file "
                             "name (default: limi_sft for sharegpt, the input's name for jsonl)")
    export.add_argument("--license", default="other", help="hub: the card's license field (default: other)")
    export.add_argument("--report", type=Path, default=None,
                        help="hub: curate's report (default: report.json beside the input)")
    export.add_argument("--metrics", type=Path, default=None,
                        help="hub: curate's metrics (default: metrics/curate.json when exporting data/sft/train.jsonl)")
    export.add_argument("--push", metavar="REPO_ID", help="hub: upload the folder to this Hub dataset (needs HF_TOKEN)")
    export.add_argument("--private", action="store_true", help="hub: create the Hub dataset private")

    imp = sub.add_parser("import", help="read other agent frameworks' trajectories into the trajectory schema",
                         usage="limi import [FORMAT] PATH [PATH ...] --out FILE [--resolved REPORT]",
                         description=IMPORT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    imp.add_argument("inputs", nargs="+", metavar="[FORMAT] PATH",
                     help=f"the format ({', '.join(IMPORT_FORMATS)}; detected when left out), then files or folders")
    imp.add_argument("--out", type=Path, required=True, metavar="FILE", help="the JSONL file to write (replaced whole)")
    imp.add_argument("--resolved", type=Path, default=None, metavar="REPORT",
                     help="an evaluation report saying which instances passed: SWE-bench's (resolved_ids, "
                          "unresolved_ids) or {instance_id: {\"resolved\": true|false}}; matched on the task id")

    ui = sub.add_parser("ui", help="start the MLflow UI and a Prefect server on 127.0.0.1 (Ctrl-C stops both)",
                        description="What `make ui` starts: the MLflow UI and a Prefect server on 127.0.0.1, "
                                    "stopped together by Ctrl-C.")
    ui.add_argument("--mlflow-port", type=int, default=5000)
    ui.add_argument("--prefect-port", type=int, default=4200)
    return parser


def cmd_show(args: argparse.Namespace) -> int:
    from pipelines.tools.episodes import find_episode, render_episode

    root = repo_root()
    loc = find_episode(args.episode, files=args.files, root=root)
    try:
        sys.stdout.write(render_episode(loc, full=args.full))
        sys.stdout.flush()
    except BrokenPipeError:  # `limi show ... | head`: the reader left, nothing is wrong
        sys.stderr.close()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pipelines.tools import export

    root = repo_root()
    default_in = root / "data" / "sft" / "train.jsonl"
    src = args.src or default_in
    if args.push and args.format != "hub":
        raise UserError("--push works with the hub format only")
    if args.push and not os.environ.get("HF_TOKEN"):
        raise UserError("--push needs HF_TOKEN set (a Hugging Face write token) and network access to "
                        "huggingface.co; without --push the folder is written and can be uploaded later")
    located = export.load_records(src)
    if not located:
        raise UserError(f"{src}: no records to export")
    records = [record for _, record in located]
    out: Path = args.out
    if args.format == "hub":
        report = args.report or src.with_name("report.json")
        metrics = args.metrics or (root / "metrics" / "curate.json"
                                   if src.resolve() == default_in.resolve() else None)
        written = export.export_hub(records, out, license_id=args.license, report_path=report,
                                    metrics_path=metrics, source_name=display_path(src))
    elif args.format == "sharegpt":
        written, lost = export.export_sharegpt(located, out, args.name or "limi_sft")
        for what, count in sorted(lost.items()):
            print(f"left out: {count} {what}")
    elif args.format == "mini-swe-agent":
        written = export.export_mini_swe_agent(records, out)
    else:
        written = export.export_jsonl(records, out, args.name or src.stem)
    print(f"{len(records)} records from {display_path(src)} as {args.format}:")
    for path in written:
        print(f"  {display_path(path)}")
    if args.push:
        url = export.push_to_hub(out, args.push, args.private)
        print(f"pushed to {url}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from collections import Counter

    from pipelines.core.io import atomic_write_text
    from pipelines.tools.importers import import_paths

    inputs: list[str] = list(args.inputs)
    fmt = None
    if inputs[0] in IMPORT_FORMATS and not Path(inputs[0]).exists():
        fmt = inputs.pop(0)
    if not inputs:
        raise UserError(f"limi import {fmt}: give at least one file or folder to read")
    out: Path = args.out
    if out.is_dir():
        raise UserError(f"--out {out}: a folder; give the JSONL file to write")
    imported = import_paths([Path(p) for p in inputs], fmt, args.resolved)
    if not imported:
        raise UserError(f"{', '.join(inputs)}: no trajectories found")
    atomic_write_text(out, "".join(json.dumps(record, ensure_ascii=False) + "\n" for _, record in imported))
    formats = Counter(f for f, _ in imported)
    states = Counter(record["meta"]["imported"]["verification"] for _, record in imported)
    unmapped = Counter()
    for _, record in imported:
        unmapped.update(record["meta"]["imported"].get("unmapped_actions") or {})
    print(f"{len(imported)} trajectories ({', '.join(f'{n} {f}' for f, n in sorted(formats.items()))}) "
          f"to {display_path(out)}")
    print("verification: " + ", ".join(f"{states.get(s, 0)} {s}" for s in ("passed", "failed", "unverified"))
          + ("   (curate keeps unverified ones out unless curate.admit_unverified)" if states.get("unverified") else ""))
    if unmapped:
        print("actions with no equivalent among this project's tools (meta.imported.unmapped_actions): "
              + ", ".join(f"{name} x{n}" for name, n in unmapped.most_common()))
    return 0


def main(argv: list[str] | None = None) -> None:
    """The ``limi`` console script: parse, run the subcommand, exit (2 on bad input, as the stages do)."""
    args = build_parser().parse_args(argv)

    def dispatch() -> int:
        if args.command == "run":
            from pipelines.tools.run import run_stages

            return run_stages(repo_root(), args.stages, single_item=args.single_item, timeout_s=args.timeout)
        if args.command == "show":
            return cmd_show(args)
        if args.command == "export":
            return cmd_export(args)
        if args.command == "import":
            return cmd_import(args)
        from pipelines.tools import ui

        return ui.main(["--mlflow-port", str(args.mlflow_port), "--prefect-port", str(args.prefect_port)])

    main_guard(dispatch)


if __name__ == "__main__":
    main()
