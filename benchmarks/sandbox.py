"""Per-call cost of the sandbox: ``BwrapSandbox.run("true")`` against a bare ``subprocess.run``.

    python benchmarks/sandbox.py [--calls 200]

Runs the two (and ``NoSandbox`` for reference) interleaved, so load on the machine hits all alike, and
prints the median and p90 wall time per call and the sandbox's overhead over the bare call; the target
is an overhead under 20 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout without installing

from pipelines.agent.sandbox.bwrap import BwrapSandbox, require_bwrap  # noqa: E402
from pipelines.agent.sandbox.plain import NoSandbox  # noqa: E402

TARGET_MS = 20.0


def time_calls(calls: dict, repeats: int) -> dict[str, list[float]]:
    """Wall time in ms of each call, ``repeats`` times, interleaved round by round."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per variant (default 200)")
    args = parser.parse_args()
    require_bwrap()
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as tmp:
        workspace = Path(tmp)
        bwrap, plain = BwrapSandbox(workspace), NoSandbox(workspace)
        # sharing the host's network shows what creating (and the kernel later tearing down) a netns costs
        bwrap_net = BwrapSandbox(workspace, network=True)
        calls = {
            "bare subprocess.run": lambda: subprocess.run(["bash", "-c", "true"], check=True),
            "NoSandbox.run": lambda: plain.run("true"),
            "BwrapSandbox.run": lambda: bwrap.run("true"),
            "  same, network=True": lambda: bwrap_net.run("true"),
        }
        for call in calls.values():  # warm caches and the bwrap probe before timing
            call()
        times = time_calls(calls, args.calls)
    print(f"{args.calls} calls of `true` each, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}, {'root' if os.geteuid() == 0 else 'unprivileged user'}")
    print(f"{'':22}{'median ms':>10}{'p90 ms':>10}")
    for name, values in times.items():
        print(f"{name:22}{statistics.median(values):10.2f}{statistics.quantiles(values, n=10)[-1]:10.2f}")
    overhead = statistics.median(times["BwrapSandbox.run"]) - statistics.median(times["bare subprocess.run"])
    verdict = "within" if overhead < TARGET_MS else "over"
    print(f"bwrap overhead (median difference): {overhead:.2f} ms, {verdict} the {TARGET_MS:.0f} ms target")


if __name__ == "__main__":
    main()
