"""Every DVC call the project makes from Python: stages and experiments, queues, queries.

``run_dvc`` (what Prefect tasks and tools run stages with) makes one DVC call in a child process
(:mod:`pipelines.core.dvc_child`) and reports which stages DVC actually ran::

    outcome = run_dvc(["repro", "dvc.yaml:collect"], root=root, env=env, timeout_s=3600, log=logger.info)
    outcome.ran, outcome.restored, outcome.skipped, outcome.seconds

Why DVC's Python API inside a child process, rather than the API in the caller's process or the
``dvc repro`` command line:

- the API, not the command line's text, says what ran: ``Repo.reproduce`` returns the stages it
  reproduced (``[]`` when nothing was stale), so DVC alone decides and we only record;
- a process of its own can be killed with its whole tree (the stage command included) when a task
  times out, which a thread running ``reproduce`` in the flow cannot be; it carries the stage
  environment (parent MLflow run, the venv's bin first on PATH) without touching the caller's
  ``os.environ``; and it holds DVC's locks only while it lives.

``exp`` runs ``dvc exp run --temp``: the experiment is reproduced in a temporary copy and recorded
under its name, and the workspace (``params.yaml`` included) is left as it was.

Commands whose output is all we need (``dvc exp run --queue``, ``dvc queue ...``, ``dvc exp show
--json``) go through :func:`dvc_command` or, for the long-lived ``dvc queue start``, :func:`start_dvc`.
Every call gets :func:`stage_environment`: this interpreter's bin first on PATH, since stage commands
say ``python``.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable

from pipelines.core.errors import UserError

CHILD = Path(__file__).resolve().with_name("dvc_child.py")


def stage_environment(extra: dict[str, str | None]) -> dict[str, str]:
    """This process's environment for a DVC call: this interpreter's bin first on PATH (stage commands say
    ``python``), DVC's analytics off unless set, plus ``extra`` (a None value removes the variable)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("DVC_NO_ANALYTICS", "1")
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def dvc_executable() -> str:
    """The ``dvc`` installed beside this interpreter, else the one on PATH."""
    here = Path(sys.executable).parent / "dvc"
    return str(here) if here.exists() else "dvc"


def dvc_command(args: list[str], root: Path, env: dict[str, str] | None = None, check: bool = True,
                timeout: float | None = 600) -> subprocess.CompletedProcess:
    """``dvc ARGS`` in ``root``, output captured; with ``check``, a failure is a UserError ending with its output."""
    result = subprocess.run([dvc_executable(), *args], cwd=root, env=env, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise UserError(f"dvc {' '.join(args)} failed:\n{(result.stderr or result.stdout).strip()[-2000:]}")
    return result


def start_dvc(args: list[str], root: Path, env: dict[str, str], output: IO) -> subprocess.Popen:
    """``dvc ARGS`` in ``root`` in the background, in a session of its own, its output to ``output``."""
    return subprocess.Popen([dvc_executable(), *args], cwd=root, env=env, stdout=output, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


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
    """Run ``pipelines/core/dvc_child.py ARGS`` in ``root``; relay its output line by line to ``log``.

    Returns the outcome; raises :class:`StageFailed` if DVC fails and ``TimeoutError`` after ``timeout_s``
    (the child's whole process group is killed, on a timeout and on any other interruption).
    """
    what = "dvc " + " ".join(args)
    with tempfile.TemporaryDirectory(prefix="limi-dvc-") as tmp:
        result_file = Path(tmp) / "result.json"
        # -I: the child's folder must not come first on its sys.path (dvc.py there would shadow DVC)
        cmd = [sys.executable, "-I", str(CHILD), *args, "--result", str(result_file)]
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
