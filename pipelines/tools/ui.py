"""``make ui``: the MLflow UI and a Prefect server on 127.0.0.1, stopped together by Ctrl-C.

``python -m pipelines.tools.ui [--mlflow-port 5000] [--prefect-port 4200]`` (or ``limi ui``)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pipelines.core.console import main_guard
from pipelines.core.errors import UserError
from pipelines.core.paths import repo_root
from pipelines.core.tracking import tracking_uri


def _wait_healthy(url: str, proc: subprocess.Popen, name: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"{name} exited with status {proc.returncode} before it was ready; see its output above")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise UserError(f"{name} did not answer at {url} within {timeout_s:.0f}s")


def start_servers(mlflow_port: int, prefect_port: int, root: Path) -> list[tuple[str, subprocess.Popen, str]]:
    """Start both servers in their own sessions (so one signal stops each whole tree)."""
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
           # the Prefect UI finds its API through these settings, not through `--port`
           "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(prefect_port)}
    env.setdefault("PREFECT_HOME", str(root / ".prefect"))
    bindir = Path(sys.executable).parent
    mlflow_cmd = [str(bindir / "mlflow"), "server", "--backend-store-uri", tracking_uri(),
                  "--default-artifact-root", (root / "mlartifacts").as_uri(),
                  "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1"]
    prefect_cmd = [str(bindir / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)]
    servers = []
    for name, cmd, health, url in (
        ("MLflow", mlflow_cmd, f"http://127.0.0.1:{mlflow_port}/health", f"http://127.0.0.1:{mlflow_port}"),
        ("Prefect", prefect_cmd, f"http://127.0.0.1:{prefect_port}/api/health", f"http://127.0.0.1:{prefect_port}"),
    ):
        proc = subprocess.Popen(cmd, cwd=root, env=env, start_new_session=True)
        servers.append((name, proc, url))
        _wait_healthy(health, proc, name)
    return servers


def stop_servers(servers) -> None:
    for _, proc, _ in servers:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for _, proc, _ in servers:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Start both servers and wait; ``argv`` as on the command line (default ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.tools.ui", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mlflow-port", type=int, default=5000)
    parser.add_argument("--prefect-port", type=int, default=4200)
    args = parser.parse_args(argv)
    # A shell that starts us in the background leaves SIGINT ignored; Ctrl-C and SIGTERM must stop both servers.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    servers: list = []
    try:
        servers = start_servers(args.mlflow_port, args.prefect_port, repo_root())
        print("\n".join(f"{name:8s} {url}" for name, _, url in servers))
        print(f"point flows at the Prefect server with: export PREFECT_API_URL=http://127.0.0.1:{args.prefect_port}/api")
        print("Ctrl-C stops both.", flush=True)
        while all(proc.poll() is None for _, proc, _ in servers):
            time.sleep(1)
        dead = [name for name, proc, _ in servers if proc.poll() is not None]
        raise UserError(f"{', '.join(dead)} stopped unexpectedly")
    except KeyboardInterrupt:
        return 0
    finally:
        stop_servers(servers)


if __name__ == "__main__":
    main_guard(main)
