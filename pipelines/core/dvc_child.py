"""The child side of :func:`pipelines.core.dvc.run_dvc`: one DVC call through DVC's Python API.

Run by ``run_dvc`` with the project root as the current directory; imports the standard library and
DVC only (the project's own package may not be importable from where it runs)::

    python -I pipelines/core/dvc_child.py repro TARGET --result FILE
    python -I pipelines/core/dvc_child.py exp [TARGET ...] --name NAME [--set key=value ...] --result FILE
    python -I pipelines/core/dvc_child.py shard TARGET --result FILE     # on a worker: pull, repro, push
    python -I pipelines/core/dvc_child.py restore TARGET --result FILE   # back home: from the run cache only
    python -I pipelines/core/dvc_child.py push --result FILE             # every output and the run cache

``-I`` keeps this file's folder off ``sys.path``: ``pipelines/core/dvc.py`` would shadow DVC's package.
``FILE`` receives JSON: the error (if any) and whether a retry may help, the stages DVC reported as
ran / skipped / restored with the time of each event, and what ``Repo.reproduce`` returned or the
experiment's revision.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from pathlib import Path

# DVC's own log records for a stage it visits; the stage's address is the record's first argument.
DVC_EVENTS = {
    "Running stage '%s':": "ran",
    "Stage '%s' didn't change, skipping": "skipped",
    "'%s' didn't change, skipping": "skipped",
    "Stage '%s' is cached - skipping run, checking out outputs": "restored",
}
USER_ERROR_STATUS = 2  # pipelines' entry points exit 2 on bad input: a retry cannot fix that


class StageEvents(logging.Handler):
    """Collects ``(stage, ran|skipped|restored, time)`` from DVC's log records, in order."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.events: list[tuple[str, str, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        kind = DVC_EVENTS.get(record.msg) if isinstance(record.msg, str) else None
        if kind and record.args:
            self.events.append((str(record.args[0]), kind, record.created))


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, make the DVC call, write the result file; 0 when DVC succeeded."""
    parser = argparse.ArgumentParser(prog="pipelines/core/dvc_child.py", description="one DVC call for a Prefect task")
    sub = parser.add_subparsers(dest="command", required=True)
    repro = sub.add_parser("repro", help="dvc repro --single-item TARGET")
    repro.add_argument("target")
    exp = sub.add_parser("exp", help="dvc exp run --temp -n NAME [-S key=value ...] [TARGET ...]")
    exp.add_argument("targets", nargs="*")
    exp.add_argument("--name", required=True)
    exp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    shard = sub.add_parser("shard", help="fetch the run cache, dvc repro --pull TARGET (upstream restored from the "
                                          "run cache), push TARGET's outputs and the run cache")
    shard.add_argument("target")
    restore = sub.add_parser("restore", help="fetch the run cache and restore TARGET from it; never runs it")
    restore.add_argument("target")
    push = sub.add_parser("push", help="dvc push --run-cache: every output and the run cache")
    for p in (repro, exp, shard, restore, push):
        p.add_argument("--result", required=True, type=Path)
    args = parser.parse_args(argv)

    events = StageEvents()
    dvc_log = logging.getLogger("dvc")
    dvc_log.addHandler(events)
    if dvc_log.getEffectiveLevel() > logging.INFO:
        dvc_log.setLevel(logging.INFO)

    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    result: dict = {"command": args.command, "error": None, "exit_status": None}
    try:
        with Repo(".") as repo:
            if args.command == "repro":
                result["targets"] = [_address(args.target)]
                done = repo.reproduce(args.target, single_item=True)
                result["reproduced"] = [_address(stage.relpath + ":" + stage.name) for stage in done]
            elif args.command == "shard":
                repo.stage_cache.pull(None)
                result["targets"] = [_address(args.target)]
                done = repo.reproduce(args.target, pull=True)
                result["reproduced"] = [_address(stage.relpath + ":" + stage.name) for stage in done]
                repo.push(targets=[args.target], run_cache=True)
            elif args.command == "restore":
                result["targets"] = [_address(args.target)]
                _check_restorable(repo, args.target)
                done = repo.reproduce(args.target, single_item=True, pull=True)
                result["reproduced"] = [_address(stage.relpath + ":" + stage.name) for stage in done]
            elif args.command == "push":
                repo.push(run_cache=True)
            else:
                revs = repo.experiments.run(targets=args.targets or None, params=args.set or None,
                                            name=args.name, tmp_dir=True)
                result["exp_rev"] = next(iter(revs), None)
    except DvcException as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, DvcException) else exc
        result["error"] = str(cause)
        status = re.search(r"exited with (-?\d+)", str(cause))
        result["exit_status"] = int(status.group(1)) if status else None
        result["retryable"] = _retryable(exc, result["exit_status"])
    result["events"] = [(_address(stage), kind, at) for stage, kind, at in events.events]
    result["ended"] = time.time()
    tmp = args.result.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(args.result)
    return 0 if result["error"] is None else 1


def _check_restorable(repo, target: str) -> None:
    """Fetch the run cache and the outputs of ``target``'s matching entry; raise unless ``target`` is up to date
    or such an entry exists with its outputs, so that the reproduce that follows restores it and never runs it.
    (DVC's own restore falls back to running the command; its lookup, ``_load``/``_create_stage``, is what
    ``StageCache.restore`` does first, and dvc is pinned.)"""
    from dvc.exceptions import DvcException

    repo.stage_cache.pull(None)
    with repo.lock:
        (stage,) = repo.stage.collect(target)
        if not stage.changed():
            return
        stage.save_deps()  # the deps' hashes: the run cache's key
        entry = repo.stage_cache._load(stage)
        cached = repo.stage_cache._create_stage(entry, wdir=stage.wdir) if entry else None
        if cached is not None:
            for objs in cached.get_used_objs().values():
                repo.cloud.pull(objs)
        if cached is None or not cached.outs_cached():
            raise DvcException(f"{target}: no run-cache entry matches this checkout's code, params and inputs "
                               "(did the worker run another commit, or not push?); not running it here")


def _retryable(exc: BaseException, exit_status: int | None) -> bool:
    """A stage command that failed (other than on bad input) or a lock held by another run may pass on a
    retry; DVC refusing the request (unknown stage, missing input, a taken experiment name) will not."""
    from dvc.lock import LockError
    from dvc.stage.exceptions import StageCmdFailedError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, LockError):
            return True
        if isinstance(seen, StageCmdFailedError):
            return exit_status != USER_ERROR_STATUS
        seen = seen.__cause__
    return False


def _address(target: str) -> str:
    """``dvc.yaml:x`` and ``x`` are the same stage of the root dvc.yaml: name it ``x``."""
    return target.split(":", 1)[1] if target.startswith("dvc.yaml:") else target


if __name__ == "__main__":
    sys.exit(main())
