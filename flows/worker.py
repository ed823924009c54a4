"""A Prefect process worker that stops within a grace period on SIGTERM, for systemd and Kubernetes.

    python -m flows.worker --pool limi-process [--grace 30] [--limit N] [--name NAME] [--queue Q ...]

It is Prefect's own ``ProcessWorker`` (same pool type, same deployments, same job variables), started
in this process with its own signal handling instead of ``prefect worker start``'s. On the first
SIGTERM or SIGINT it:

1. stops taking flow runs (the poll returns nothing; heartbeats go on);
2. lets the flow runs it is running finish, until ``grace - reserve`` seconds after the signal;
3. hands each one still running back to the pool: its flow-run process gets SIGTERM and, run as
   ``prefect flow-run execute`` with ``PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR=reschedule`` (this
   worker's default command for runs whose deployment names none), tells its engine to stop without
   reporting a state, moves the run to ``AwaitingRetry`` (another worker picks it up) and exits. A DVC
   stage it was running is stopped with its process group and leaves nothing recorded: ``dvc.lock``
   changes only when a stage finishes, and stages write their outputs atomically;
4. tears the worker down (marks it stopped over the API) and exits, by ``grace`` seconds at the
   latest: a watchdog thread ends the process then, whatever the teardown or interpreter exit is
   waiting for. A second signal skips step 2.

Why not ``prefect worker start``: Prefect 3.9's CLI turns a SIGTERM into a SIGINT sent to itself, and
that SIGINT into a second one sent to itself after putting back the SIGINT handler found at start-up.
That handler is asyncio's "cancel the main task" (``asyncio.Runner``) only when SIGINT was at Python's
default when the process started; a process started with ``&`` by a non-interactive shell (a CI or
service script), and everything below it, has SIGINT ignored, so the second SIGINT is ignored too and the
worker polls on until SIGKILL (``start_new_session`` does not change that: an ignored signal stays
ignored across fork and exec). Where the cancellation does happen, running flow runs are not handed
back to the pool, and nothing bounds how long the teardown and the exit's flush of queued events take. See README "Running workers under a supervisor".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
import time
import warnings
from typing import Any
from uuid import UUID

import anyio
from prefect.utilities.processutils import command_to_string
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker

# the run's process: `prefect flow-run execute` hands the run back to the pool on SIGTERM (Prefect's setting)
SIGTERM_BEHAVIOR = "PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR"
EXIT_ASKED, EXIT_FORCED = 0, 1


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} | limi worker | {message}", flush=True)


class RescheduleOnTermConfiguration(ProcessJobConfiguration):
    """Runs whose deployment sets no ``command`` run as ``python -m prefect flow-run execute`` with the
    reschedule-on-SIGTERM behaviour (a deployment's own ``command`` and ``env`` entries win)."""

    def prepare_for_flow_run(self, flow_run, deployment=None, flow=None, work_pool=None, worker_name=None,
                             worker_id=None) -> None:
        super().prepare_for_flow_run(flow_run, deployment, flow, work_pool, worker_name, worker_id=worker_id)
        if not self._command_configured:
            self.command = command_to_string([sys.executable, "-m", "prefect", "flow-run", "execute"])
            self._command_configured = True
        self.env.setdefault(SIGTERM_BEHAVIOR, "reschedule")


# Prefect registers every worker class by its pool type: this one takes "process" over in this process only
warnings.filterwarnings("ignore", message="Type 'DrainingProcessWorker'", category=UserWarning)


class DrainingProcessWorker(ProcessWorker):
    """``ProcessWorker`` that knows its running flow runs' processes and can stop taking new ones."""

    job_configuration = RescheduleOnTermConfiguration

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.draining = False
        self.running: dict[UUID, int | None] = {}  # flow run id -> its process id once started

    async def get_and_submit_flow_runs(self):
        if self.draining:  # keep heartbeating, take nothing
            return []
        return await super().get_and_submit_flow_runs()

    async def run(self, flow_run, configuration, task_status=None):
        running, run_id = self.running, flow_run.id
        running[run_id] = None

        class Started:  # records the process id on its way to Prefect's task status
            def started(self, value: Any = None) -> None:
                running[run_id] = value
                if task_status is not None:
                    task_status.started(value)

        try:
            return await super().run(flow_run, configuration, task_status=Started())
        finally:
            running.pop(run_id, None)


def _phases(grace: float) -> tuple[float, float]:
    """Seconds after the signal at which (drain ends, the process is ended whatever it is doing)."""
    hard = max(grace - 0.5, 0.5)
    reserve = min(10.0, grace / 2)  # handing runs back and the teardown
    return max(grace - reserve, 0.0), hard


async def serve(pool: str, *, grace: float = 30.0, name: str | None = None, limit: int | None = None,
                queues: list[str] | None = None) -> int:
    """Run the worker until a signal, then stop within ``grace`` seconds; the exit status."""
    worker = DrainingProcessWorker(work_pool_name=pool, name=name, limit=limit, work_queues=queues,
                                   create_pool_if_not_found=False)
    loop = asyncio.get_running_loop()
    signalled = asyncio.Event()
    hurry = asyncio.Event()
    asked_at: list[float] = []

    def on_signal(signum: int) -> None:
        if asked_at:
            say(f"{signal.Signals(signum).name} again: handing running flow runs back now")
            hurry.set()
            return
        asked_at.append(time.monotonic())
        drain_s, hard_s = _phases(grace)
        say(f"{signal.Signals(signum).name}: no new flow runs; {len(worker.running)} running get {drain_s:.0f} s "
            f"to finish, then go back to the pool; exit within {grace:.0f} s")
        watchdog = threading.Timer(hard_s, _hard_exit, args=(worker,))
        watchdog.daemon = True
        watchdog.start()
        signalled.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)

    task = asyncio.create_task(worker.start(printer=say))
    waiter = asyncio.create_task(signalled.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():  # the worker ended by itself (its setup failed, say)
        waiter.cancel()
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            say(f"the worker stopped: {type(failure).__name__}: {failure}")
        return EXIT_FORCED if failure is not None else EXIT_ASKED

    worker.draining = True
    drain_s, hard_s = _phases(grace)
    started = asked_at[0]
    await _wait_runs(worker, started + drain_s, hurry)
    if worker.running:
        await _hand_back(worker, started + (drain_s + hard_s) / 2)
    task.cancel()  # Prefect's own teardown; the watchdog bounds it
    with anyio.move_on_after(max(started + hard_s - time.monotonic(), 0.1)):
        await asyncio.wait({task})
    say(f"stopped after {time.monotonic() - started:.1f} s"
        + (f"; {len(worker.running)} flow runs still running" if worker.running else ""))
    return EXIT_FORCED if worker.running else EXIT_ASKED


async def _wait_runs(worker: DrainingProcessWorker, until: float, hurry: asyncio.Event) -> None:
    while worker.running and time.monotonic() < until and not hurry.is_set():
        await asyncio.sleep(0.2)


async def _hand_back(worker: DrainingProcessWorker, until: float) -> None:
    """SIGTERM to each running flow run's process (it reschedules its run and exits); wait for them."""
    for run_id, pid in list(worker.running.items()):
        say(f"flow run {run_id} still running: back to the pool (SIGTERM to process {pid})")
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    while worker.running and time.monotonic() < until:
        await asyncio.sleep(0.2)


def _hard_exit(worker: DrainingProcessWorker) -> None:
    """The grace period is up: end the process now (the supervisor would SIGKILL it next)."""
    say("grace period up: exiting without waiting further for the worker's teardown")
    sys.stdout.flush()
    os._exit(EXIT_FORCED if worker.running else EXIT_ASKED)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", required=True, help="the process work pool to serve (e.g. limi-process)")
    parser.add_argument("--grace", type=float, default=30.0,
                        help="seconds from SIGTERM to exit (default 30, Kubernetes' default grace period; give "
                             "the supervisor a few more before it kills)")
    parser.add_argument("--limit", type=int, help="flow runs at once (default: no limit)")
    parser.add_argument("--name", help="worker name shown in the UI (default: a random one)")
    parser.add_argument("--queue", action="append", dest="queues", help="poll only this work queue (repeatable)")
    args = parser.parse_args(argv)
    if args.grace < 1:
        parser.error("--grace must be at least 1 second")
    status = asyncio.run(serve(args.pool, grace=args.grace, name=args.name, limit=args.limit, queues=args.queues))
    # interpreter exit still drains Prefect's events client; the watchdog (started on the signal) bounds that
    return status


if __name__ == "__main__":
    sys.exit(main())
