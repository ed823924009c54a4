"""One DVC call in a child process that reports which stages DVC actually ran.

Parent side (a Prefect task, or any tool that runs stages)::

    outcome = run_dvc(["repro", "dvc.yaml:collect"], root=root, env=env, timeout_s=3600, log=logger.info)
    outcome.ran, outcome.restored, outcome.skipped, outcome.seconds

Child side, run by ``run_dvc`` with the project root as the current directory (stdlib and DVC only)::

    python -I pipelines/core/dvc.py repro TARGET --result FILE
    python -I pipelines/core/dvc.py exp [TARGET ...] --name NAME [--set key=value ...] --result FILE

(``-I`` keeps this file's folder off ``sys.path``: its name would otherwise shadow DVC's package.)

Why DVC's Python API inside a child process, rather than the API in the flow's process or the
``dvc repro`` command line:

- the API, not the command line's text, says what ran: ``Repo.reproduce`` returns the stages it
  reproduced (``[]`` when nothing was stale), so DVC alone decides and we only record;
- a process of its own can be killed with its whole tree (the stage command included) when a task
  times out, which a thread running ``reproduce`` in the flow cannot be; it carries the stage
  environment (parent MLflow run, the venv's bin first on PATH) without touching the flow process's
  ``os.environ``; and it holds DVC's locks only while it lives.

``exp`` runs ``dvc exp run --temp``: the experiment is reproduced in a temporary copy and recorded
under its name, and the workspace (``params.yaml`` included) is left as it was.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# DVC's own log records for a stage it visits; the stage's address is the record's first argument.
DVC_EVENTS = {
    "Running stage '%s':": "ran",
    "Stage '%s' didn't change, skipping": "skipped",
    "'%s' didn't change, skipping": "skipped",
    "Stage '%s' is cached - skipping run, checking out outputs": "restored",
}
USER_ERROR_STATUS = 2  # pipelines' entry points exit 2 on bad input: a retry cannot fix that


# ------------------------------------------------------------------------------------------ parent side
@dataclass
class DvcOutcome:
    """What one DVC call did. ``restored``: outputs taken from DVC's run cache without running the command."""

    ran: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    exp_rev: str | None = None


class StageFailed(RuntimeError):
    """A DVC call failed. ``exit_status``: the stage command's status when DVC reported one; ``retryable``:
    whether another attempt may succeed; ``outcome``: what DVC had done before it failed (the last stage in
    ``outcome.seconds`` is the one that failed)."""

    def __init__(self, what: str, message: str, exit_status: int | None = None, retryable: bool = True,
                 output_tail: str = "", outcome: DvcOutcome | None = None):
        detail = f"\n--- last lines of output ---\n{output_tail}" if output_tail else ""
        super().__init__(f"{message} ({what}){detail}")
        self.exit_status = exit_status
        self.retryable = retryable
        self.outcome = outcome


def run_dvc(args: list[str], *, root: Path, env: dict[str, str], timeout_s: float | None = None,
            log: Callable[[str], None] = print, tail_lines: int = 40) -> DvcOutcome:
    """Run ``pipelines/core/dvc.py ARGS`` in ``root``; relay its output line by line to ``log``.

    Returns the outcome; raises :class:`StageFailed` if DVC fails and ``TimeoutError`` after ``timeout_s``
    (the child's whole process group is killed, on a timeout and on any other interruption).
    """
    what = "dvc " + " ".join(args)
    with tempfile.TemporaryDirectory(prefix="limi-dvc-") as tmp:
        result_file = Path(tmp) / "result.json"
        # -I: this file's folder must not come first on the child's sys.path (dvc.py would shadow DVC)
        cmd = [sys.executable, "-I", str(Path(__file__).resolve()), *args, "--result", str(result_file)]
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", bufsize=1, start_new_session=True)
        tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        relay = threading.Thread(target=_relay, args=(proc, log, tail), daemon=True)
        relay.start()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            raise TimeoutError(f"no result after {timeout_s:.0f}s from {what}; stopped it") from None
        except BaseException:  # the task was cancelled or timed out by Prefect: the stage must not live on
            _stop_group(proc)
            raise
        finally:
            relay.join(timeout=5)
        result = json.loads(result_file.read_text()) if result_file.exists() else {}
    if proc.returncode != 0 or result.get("error"):
        message = result.get("error") or f"the DVC runner exited with status {proc.returncode}"
        raise StageFailed(what, message, result.get("exit_status"), retryable=result.get("retryable", True),
                          output_tail="\n".join(tail), outcome=_outcome(result) if result else None)
    return _outcome(result)


def _relay(proc: subprocess.Popen, log: Callable[[str], None], tail: collections.deque) -> None:
    for line in proc.stdout:  # type: ignore[union-attr]
        line = line.rstrip()
        if line:
            tail.append(line)
            log(line)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the child's session (DVC and the stage command), then SIGKILL whatever is left of it."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass


def _outcome(result: dict) -> DvcOutcome:
    events = result.get("events", [])
    ended = result.get("ended", 0.0)
    outcome = DvcOutcome(exp_rev=result.get("exp_rev"))
    kinds: dict[str, str] = {}
    for i, (stage, kind, started) in enumerate(events):
        kinds[stage] = kind
        finished = events[i + 1][2] if i + 1 < len(events) else ended
        outcome.seconds[stage] = round(max(0.0, finished - started), 3)
    reproduced = result.get("reproduced")
    if reproduced is not None:  # repro: DVC's return value is the authority on what ran
        for stage in result.get("targets", []):
            kinds.setdefault(stage, "skipped")
        for stage in reproduced:
            if kinds.get(stage) != "restored":
                kinds[stage] = "ran"
        for stage, kind in kinds.items():
            if kind == "ran" and stage not in reproduced:
                kinds[stage] = "skipped"
    for stage, kind in kinds.items():
        getattr(outcome, kind).append(stage)
    return outcome


# ------------------------------------------------------------------------------------------- child side
class StageEvents(logging.Handler):
    """Collects ``(stage, ran|skipped|restored, time)`` from DVC's log records, in order."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.events: list[tuple[str, str, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        kind = DVC_EVENTS.get(record.msg) if isinstance(record.msg, str) else None
        if kind and record.args:
            self.events.append((str(record.args[0]), kind, record.created))


def _child(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pipelines/core/dvc.py", description="one DVC call for a Prefect task")
    sub = parser.add_subparsers(dest="command", required=True)
    repro = sub.add_parser("repro", help="dvc repro --single-item TARGET")
    repro.add_argument("target")
    exp = sub.add_parser("exp", help="dvc exp run --temp -n NAME [-S key=value ...] [TARGET ...]")
    exp.add_argument("targets", nargs="*")
    exp.add_argument("--name", required=True)
    exp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    for p in (repro, exp):
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
    sys.exit(_child())
