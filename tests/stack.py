"""Real servers on loopback for the tests, started once per session: an S3-compatible store (moto's server),
a private PostgreSQL cluster, and the team setup on top of them (a Prefect server and an MLflow server on
PostgreSQL, MLflow artifacts on S3, a process worker in a process of its own serving prefect.yaml's
deployments of a toy project).

Credentials exist only in environments handed to the processes that need them: the S3 keys go to DVC and
the MLflow server (never to the worker, which logs artifacts through the server), the database password to
the two servers as PGPASSWORD (libpq and asyncpg read it), so no URL, command line or file carries one.
Every process is started in its own session and stopped by the fixture that started it, also on failure.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECRET_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PGPASSWORD")


# ----------------------------------------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} not healthy after {timeout_s}s")


def stop(proc: subprocess.Popen, *, ctrl_c: bool = True, term_grace: float = 15) -> int | None:
    """Ctrl-C to the process's own session, then SIGTERM, then SIGKILL; the signal that ended it.

    ``ctrl_c=False`` starts at SIGTERM, as a supervisor does: the project's worker (``python -m flows.worker``)
    stops within its grace period on it. ``term_grace`` is how long SIGTERM may take before SIGKILL.
    """
    steps = ((signal.SIGINT, 30), (signal.SIGTERM, term_grace), (signal.SIGKILL, 5))
    for sig, grace in steps if ctrl_c else steps[1:]:
        if proc.poll() is not None:
            return None
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=grace)
            return sig
        except ProcessLookupError:
            return None
        except subprocess.TimeoutExpired:
            continue
    return signal.SIGKILL


def stop_all(procs: list[subprocess.Popen]) -> list[int | None]:
    """``stop`` on each at once (each one's grace periods run side by side)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, len(procs))) as pool:
        return list(pool.map(stop, procs))


def start(cmd: list[str], log: Path, *, env: dict, cwd: Path) -> subprocess.Popen:
    """``cmd`` in its own session (so one signal stops its whole tree), output to ``log``."""
    with log.open("w") as out:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def clean_env(**extra: str) -> dict:
    """The test process's environment without settings or secrets that would leak into a server or client."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "MLFLOW_", "LIMI_", "AWS_", "PG")) and k not in SECRET_VARS}
    env.update({"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1",
                "PATH": os.pathsep.join([str(BIN), env.get("PATH", "")]), **extra})
    return env


def dump_logs(logs: Path, tail: int = 4000) -> None:
    for log in sorted(logs.glob("*.log")):
        print(f"--- {log.name} ---\n" + log.read_text(errors="replace")[-tail:])


# ------------------------------------------------------------------------------------------------------ S3
@dataclass
class S3Store:
    """A bucket on a local S3-compatible server; ``env`` is what a client needs (endpoint and credentials)."""

    endpoint: str
    bucket: str
    env: dict[str, str]

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.env["AWS_DEFAULT_REGION"],
                            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"])

    def keys(self, prefix: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


@pytest.fixture(scope="session")
def s3_store():
    """moto's S3 server on 127.0.0.1 (a free port) with one bucket; throwaway credentials made up per session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        env = {"AWS_ACCESS_KEY_ID": f"limi{secrets.token_hex(6)}", "AWS_SECRET_ACCESS_KEY": secrets.token_hex(20),
               "AWS_DEFAULT_REGION": "us-east-1", "MLFLOW_S3_ENDPOINT_URL": endpoint}
        store = S3Store(endpoint, "limi-test", env)
        store.client().create_bucket(Bucket=store.bucket)
        yield store
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------- PostgreSQL
def postgres_bindir() -> Path | None:
    """The newest Debian PostgreSQL server binaries, else ``initdb`` on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    initdb = found[-1] if found else shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _system_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@dataclass
class Postgres:
    """A private cluster on 127.0.0.1; superuser ``user`` with ``password`` (clients get it as PGPASSWORD)."""

    port: int
    user: str
    password: str = field(repr=False)

    def url(self, database: str, driver: str = "postgresql") -> str:
        return f"{driver}://{self.user}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres"):
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                                dbname=database)

    def create_database(self, name: str) -> None:
        conn = self.connect()
        conn.autocommit = True  # CREATE DATABASE refuses to run in a transaction
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    def query(self, database: str, sql: str, args: tuple = ()) -> list[tuple]:
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall()
        finally:
            conn.close()


@pytest.fixture(scope="session")
def postgres():
    """initdb + pg_ctl start on a free loopback port, data and socket in a temp dir; stopped and removed after.

    The server refuses to run as root, so as root the cluster belongs to the ``postgres`` system user."""
    bindir = postgres_bindir()
    if bindir is None or (os.geteuid() == 0 and not _system_user("postgres")):
        pytest.skip("PostgreSQL server missing: 'sudo apt-get install postgresql' (make setup does it as root)")
    as_owner: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="limi-pg-"))  # not under pytest's root-only tmp dirs: postgres must reach it
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(base, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", "postgres", "--"]
    data, sockets, pwfile, log = base / "data", base / "sockets", base / "pwfile", base / "server.log"
    pg = Postgres(port=free_port(), user="limi", password=secrets.token_urlsafe(18))

    def owned(path: Path, text: str | None = None) -> None:
        if text is None:
            path.mkdir(mode=0o700)
        else:
            path.write_text(text)
            path.chmod(0o600)
        if as_owner:
            shutil.chown(path, "postgres", "postgres")

    def pg_ctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*as_owner, str(bindir / "pg_ctl"), "-D", str(data), *args], capture_output=True,
                              text=True, timeout=60, check=check)

    try:
        owned(sockets)
        owned(pwfile, pg.password + "\n")
        subprocess.run([*as_owner, str(bindir / "initdb"), "-D", str(data), "-U", pg.user, f"--pwfile={pwfile}",
                        "--auth-host=scram-sha-256", "--auth-local=peer", "-E", "UTF8", "--no-sync"],
                       capture_output=True, text=True, timeout=120, check=True)
        pwfile.unlink()
        pg_ctl("-l", str(log), "-w", "-t", "60", "-o",
               f"-h 127.0.0.1 -p {pg.port} -k {sockets} -c fsync=off -c full_page_writes=off", "start")
        yield pg
    except subprocess.CalledProcessError as exc:
        raise AssertionError(f"{exc.cmd}: {exc.stdout}\n{exc.stderr}\n"
                             + (log.read_text(errors="replace")[-3000:] if log.exists() else "")) from exc
    finally:
        if (data / "postmaster.pid").exists():
            if pg_ctl("-m", "fast", "-w", "-t", "30", "stop", check=False).returncode != 0:
                pg_ctl("-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ the team
# A stage of the team's toy project that logs an artifact: the worker has no S3 credentials, so the artifact
# can only reach the bucket through the MLflow server.
REPORT_STAGE = """
import pathlib

from pipelines.core.tracking import stage_run

text = pathlib.Path("c.txt").read_text()
with stage_run("report", {}) as run:
    pathlib.Path("report.txt").write_text(text.upper())
    run.log_dict({"chars": len(text), "text": text}, "report.json")
"""


@dataclass
class Team:
    """Prefect and MLflow servers on PostgreSQL, MLflow artifacts on S3, a process worker for ``project``.

    ``env`` is a client's environment (server URLs, no secrets); ``artifacts`` the S3 prefix of MLflow's store."""

    pg: Postgres
    s3: S3Store
    prefect_url: str
    mlflow_url: str
    project: Path
    env: dict
    logs: Path
    artifacts: str = "mlflow"

    def prefect(self, *args: str, cwd: Path | None = None, timeout: int = 120) -> str:
        result = subprocess.run([str(BIN / "prefect"), *args], cwd=cwd or self.project, env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result.stdout

    def secrets(self) -> list[str]:
        return [self.pg.password, self.s3.env["AWS_SECRET_ACCESS_KEY"], self.s3.env["AWS_ACCESS_KEY_ID"]]


def team_project(root: Path) -> Path:
    """The toy a -> b -> c project of test_flows plus a ``report`` stage, with the repo's prefect.yaml and flows."""
    from tests.flows.test_flows import abc_stages, make_toy

    stages = abc_stages(tracked=("c",))
    stages["report"] = {"cmd": "python report_stage.py", "deps": ["report_stage.py", "c.txt"],
                        "outs": ["report.txt"]}
    root.mkdir(parents=True)
    (root / "report_stage.py").write_text(REPORT_STAGE)
    shutil.copy(REPO / "prefect.yaml", root / "prefect.yaml")
    shutil.copytree(REPO / "flows", root / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    return make_toy(root, stages, {name: {"n": 1} for name in "abc"})


@pytest.fixture(scope="session")
def team(tmp_path_factory, postgres, s3_store):
    """The team setup, started once: both servers in parallel (about 10-15 s on 2 cores), then a work pool,
    prefect.yaml's deployments and a worker. Everything is stopped at the end of the session, also on failure."""
    base = tmp_path_factory.mktemp("team")
    logs = base / "logs"
    logs.mkdir()
    postgres.create_database("prefect")
    postgres.create_database("mlflow")
    prefect_port = free_port()
    while (mlflow_port := free_port()) == prefect_port:
        pass
    prefect_env = clean_env(PGPASSWORD=postgres.password, PREFECT_HOME=str(base / "prefect-server"),
                            PREFECT_API_DATABASE_CONNECTION_URL=postgres.url("prefect", "postgresql+asyncpg"),
                            # the UI's API address comes from these settings, not from `--port`
                            PREFECT_SERVER_API_HOST="127.0.0.1", PREFECT_SERVER_API_PORT=str(prefect_port))
    mlflow_env = clean_env(PGPASSWORD=postgres.password, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", **s3_store.env)
    mlflow_cmd = [str(BIN / "mlflow"), "server", "--backend-store-uri", postgres.url("mlflow", "postgresql+psycopg2"),
                  "--artifacts-destination", f"s3://{s3_store.bucket}/mlflow",
                  "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1"]
    project = team_project(base / "project")
    with contextlib.ExitStack() as running:
        try:
            servers: list[subprocess.Popen] = []
            running.callback(stop_all, servers)
            for name, cmd, env in (
                    ("prefect-server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
                                        str(prefect_port)], prefect_env),
                    ("mlflow-server", mlflow_cmd, mlflow_env)):
                servers.append(start(cmd, logs / f"{name}.log", env=env, cwd=base))
            wait_healthy(f"http://127.0.0.1:{prefect_port}/api/health", servers[0], timeout_s=120)
            wait_healthy(f"http://127.0.0.1:{mlflow_port}/health", servers[1], timeout_s=120)
            setup = Team(postgres, s3_store, f"http://127.0.0.1:{prefect_port}", f"http://127.0.0.1:{mlflow_port}",
                         project, clean_env(PREFECT_HOME=str(base / "prefect-client"),
                                            PREFECT_API_URL=f"http://127.0.0.1:{prefect_port}/api",
                                            PREFECT_WORKER_QUERY_SECONDS="1",
                                            MLFLOW_TRACKING_URI=f"http://127.0.0.1:{mlflow_port}",
                                            PYTHONPATH=str(REPO)), logs)
            setup.prefect("work-pool", "create", "limi-process", "--type", "process")
            setup.prefect("--no-prompt", "deploy", "--all")
            worker = start([sys.executable, "-m", "flows.worker", "--pool", "limi-process"], logs / "worker.log",
                           env={**setup.env, "LIMI_ROOT": str(project)}, cwd=base)
            running.callback(stop, worker, ctrl_c=False)
            pool = f"{setup.env['PREFECT_API_URL']}/work_pools/limi-process"
            deadline = time.monotonic() + 60
            while True:  # the pool turns READY once the worker has polled it
                with urllib.request.urlopen(pool, timeout=5) as resp:
                    if json.load(resp)["status"] == "READY":
                        break
                assert worker.poll() is None and time.monotonic() < deadline, "the worker never came online"
                time.sleep(0.5)
            yield setup
        except BaseException:
            dump_logs(logs)
            raise
