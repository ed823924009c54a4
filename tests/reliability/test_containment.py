"""Sandbox containment: what a hostile or careless agent tries, run through the agent's real tools.

Every attempt goes through :class:`~pipelines.agent.tools.Toolbox` with the sandbox that the collect
stage itself builds (``Collector.sandbox``: bubblewrap, the stage's limits, the repo's ``.dvc``
hidden). Whether it was contained is judged from the host: files outside the workspace unchanged,
markers absent from what the agent got back, listeners that heard nothing, no process left behind,
the host still responsive.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipelines.agent.loop import Limits, run_episode
from pipelines.agent.tools import Toolbox
from pipelines.agent.users import SimulatedUser
from pipelines.agent.verifiers import make_verifier
from pipelines.collection.episode import Collector
from pipelines.llm.scripted import ScriptedModel
from pipelines.core.params import parse_params
from pipelines.core.schema import VerifierSpec
from tests.agent.test_sandbox import host_pids_running

pytestmark = pytest.mark.needs_bwrap
REPO = Path(__file__).resolve().parents[2]
TOKEN = secrets.token_hex(6)
MARK = f"limi-secret-{TOKEN}"  # what a leak would show
SECRET_ENV = {"OPENAI_API_KEY": f"sk-{MARK}-openai", "GITHUB_TOKEN": f"ghp_{MARK}-github",
              "AWS_SECRET_ACCESS_KEY": f"{MARK}-aws"}
TIMEOUT_S = 3.0


@dataclass
class Host:
    """The host side of the attempts: a project with secrets, files outside the workspace, listeners."""

    root: Path
    outside: Path
    victim: Path
    collector: Collector
    ssh_key: Path | None


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    saved = {k: os.environ.get(k) for k in SECRET_ENV}
    os.environ.update(SECRET_ENV)  # the stage's own environment holds the tokens
    root = tmp_path_factory.mktemp("contain") / "project"
    (root / ".dvc").mkdir(parents=True)
    (root / ".dvc" / "config.local").write_text(f"['remote \"s3\"']\n    secret_access_key = {MARK}-dvc\n")
    outside = Path(tempfile.mkdtemp(prefix="limi-outside-", dir="/var/tmp"))  # not under the sandbox's private /tmp
    victim = outside / "victim.txt"
    victim.write_text("original\n")
    ssh_key = None
    try:  # a key where ~/.ssh would be on a multi-user machine; /home is always hidden from the sandbox
        home = Path(tempfile.mkdtemp(prefix="limi-user-", dir="/home"))
        (home / ".ssh").mkdir()
        ssh_key = home / ".ssh" / "id_ed25519"
        ssh_key.write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{MARK}-ssh\n")
    except OSError:
        home = None
    params = parse_params({"collect": {"command_timeout_s": TIMEOUT_S, "memory_mb": 256}})
    yield Host(root, outside, victim, Collector(params, root), ssh_key)
    shutil.rmtree(outside, ignore_errors=True)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def tools(host, tmp_path) -> Toolbox:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "app.py").write_text("print('hello')\n")
    host.victim.write_text("original\n")
    return Toolbox(workspace, host.collector.sandbox(workspace))


@pytest.fixture
def filler_tools(host, tmp_path) -> Toolbox:
    """Tools whose commands may run 60 s: writing a few hundred MB must reach the quota, not the short
    TIMEOUT_S, even on a loaded machine (else the quota is never what stops it and the check proves nothing)."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    params = parse_params({"collect": {"command_timeout_s": 60.0, "memory_mb": 256}})
    return Toolbox(workspace, Collector(params, host.root).sandbox(workspace))


def bash(tools: Toolbox, command: str):
    return tools.call("bash", {"command": command})


def leaked(text: str) -> bool:
    return TOKEN in text


def gone(marker: str, within_s: float = 3.0) -> bool:
    deadline = time.monotonic() + within_s
    while host_pids_running(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not host_pids_running(marker)


contain = pytest.mark.figure("containment")


# --------------------------------------------------------------------- writing or deleting outside
@contain
def test_write_file_absolute_path_outside(tools, host):
    target = host.outside / "planted.txt"
    result = tools.call("write_file", {"path": str(target), "content": "x"})
    assert result.is_error and "outside the workspace" in result.output
    assert not target.exists()


@contain
def test_write_file_dotdot_escape(tools, host):
    rel = os.path.relpath(host.victim, tools.workspace)
    result = tools.call("write_file", {"path": rel, "content": "overwritten"})
    assert result.is_error and host.victim.read_text() == "original\n"


@contain
def test_write_through_planted_directory_symlink(tools, host):
    # the link is made, but what it names is not in the sandbox: the host folder is simply not mounted
    assert "No such file" in bash(tools, f"ln -s {host.outside} out && ls out/").output
    assert (tools.workspace / "out").is_symlink()
    result = tools.call("write_file", {"path": "out/new.txt", "content": "x"})
    assert result.is_error and "symbolic link" in result.output and not (host.outside / "new.txt").exists()


@contain
def test_str_replace_through_planted_file_symlink(tools, host):
    bash(tools, f"ln -s {host.victim} v.txt")
    result = tools.call("str_replace", {"path": "v.txt", "old": "original", "new": "changed"})
    assert result.is_error and host.victim.read_text() == "original\n"


@contain
def test_read_file_through_symlink_to_a_host_secret(tools, host):
    bash(tools, f"ln -s {host.root}/.dvc/config.local creds")
    result = tools.call("read_file", {"path": "creds"})
    assert result.is_error and not leaked(result.output)


@contain
def test_write_to_a_planted_hard_link(tools, host):
    os.link(host.victim, tools.workspace / "hard.txt")  # e.g. a workspace copied with its links
    results = [tools.call("write_file", {"path": "hard.txt", "content": "changed"}),
               tools.call("str_replace", {"path": "hard.txt", "old": "original", "new": "changed"})]
    assert all(r.is_error and "hard links" in r.output for r in results)
    assert host.victim.read_text() == "original\n"


@contain
def test_bash_hard_link_to_outside_then_write(tools, host):
    result = bash(tools, f"ln {host.victim} h.txt && echo changed > h.txt; cat {host.victim}")
    assert any(why in result.output for why in ("No such file", "Invalid cross-device link", "Read-only", "not permitted"))
    assert host.victim.read_text() == "original\n"


@contain
def test_bash_writes_and_deletes_outside(tools, host):
    repo_file = host.root / "params.yaml"
    repo_file.write_text("collect: {}\n")
    result = bash(tools, f"echo x > {host.outside}/new.txt; echo x >> {host.victim}; rm -rf {host.outside}; "
                         f"echo x >> {repo_file}; rm -f {repo_file}; chmod 777 {host.victim}; echo x > /etc/limi-{TOKEN}")
    assert "Read-only file system" in result.output
    assert host.victim.read_text() == "original\n" and oct(host.victim.stat().st_mode)[-3:] != "777"
    assert repo_file.read_text() == "collect: {}\n" and not (host.outside / "new.txt").exists()
    assert not Path(f"/etc/limi-{TOKEN}").exists()


@contain
def test_bash_dotdot_write_stays_private(tools):
    result = bash(tools, "echo x > ../escaped.txt && echo x > /tmp/escaped.txt && echo wrote")
    assert "wrote" in result.output  # the private /tmp takes it ...
    assert not (tools.workspace.parent / "escaped.txt").exists()  # ... and the host never sees it
    assert not Path("/tmp/escaped.txt").exists() or Path("/tmp/escaped.txt").stat().st_mtime < time.time() - 60


@contain
def test_remount_root_read_write(tools, host):
    result = bash(tools, f"mount -o remount,rw / ; unshare -Urm sh -c 'mount -o remount,rw / && "
                         f"echo x > {host.victim}'; echo x > {host.victim}; echo x > /limi-{TOKEN}")
    assert host.victim.read_text() == "original\n" and "Read-only" in result.output
    assert not Path(f"/limi-{TOKEN}").exists()


# --------------------------------------------------------------------- reading the host's secrets
@contain
def test_process_environment_tokens(tools):
    result = bash(tools, "env; cat /proc/self/environ | tr '\\0' '\\n'")
    assert not leaked(result.output) and "OPENAI_API_KEY" not in result.output


@contain
def test_proc_1_environ_and_host_processes(tools):
    # /proc/1 is the sandbox's own init; the stage's process (which holds the tokens) is not visible at all
    result = bash(tools, f"cat /proc/1/environ; for p in /proc/[0-9]*; do cat $p/environ; done; "
                         f"cat /proc/{os.getpid()}/environ; ls /proc | grep -c '^[0-9]'")
    assert not leaked(result.output)
    assert int(result.output.split("\n[exit code")[0].split()[-1]) < 10


@contain
def test_ssh_keys_and_home(tools, host):
    key = f"cat {host.ssh_key}; " if host.ssh_key else ""
    result = bash(tools, f"{key}cat ~/.ssh/* /root/.ssh/* /home/*/.ssh/*; ls -A /root /home")
    assert not leaked(result.output)
    read = tools.call("read_file", {"path": str(host.ssh_key or "/root/.ssh/id_rsa")})
    assert read.is_error and not leaked(read.output)


@contain
def test_repo_dvc_config_local(tools, host):
    result = bash(tools, f"cat {host.root}/.dvc/config.local; ls -A {host.root}/.dvc; grep -r limi-secret {host.root}")
    assert not leaked(result.output)
    assert (host.root / ".dvc" / "config.local").read_text().count(MARK) == 1  # the file is really there


@contain
def test_repository_venv_and_host_folders_are_absent(tools, host):
    # reference solutions under data/, .git history, mlflow.db, models/: none of it is mounted, nor the venv
    paths = [REPO, REPO / ".git", REPO / "data", host.root, Path(sys.executable), Path(sys.executable).resolve(),
             host.outside, "/root", "/home", "/work", "/opt", "/var", "/srv", "/mnt", "/run"]
    probes = "; ".join(f"test -e {path} && echo visible: {path}" for path in paths)
    result = bash(tools, f"{probes}; ls -d {' '.join(map(str, paths))}; cat {host.victim}")
    assert "visible:" not in result.output and "original" not in result.output
    assert result.output.count("No such file or directory") == len(paths) + 1
    assert host.victim.read_text() == "original\n"  # the canary is really there on the host


@contain
def test_planted_module_run_by_a_hidden_check_writes_nothing_back(tools):
    # a json.py in the workspace, imported by the check, tries to keep the check's command line for later
    thief = ("import sys\nopen('stolen.txt', 'w').write(open('/proc/self/cmdline').read())\n"
             "open('app.py', 'w').write('print(\"tampered\")')\n")
    tools.call("write_file", {"path": "json.py", "content": thief})
    check = f"python3 -c 'import json  # hidden-check-{TOKEN}' && cat app.py"
    verifier = make_verifier(VerifierSpec(kind="tests", commands=[check]), tools.sandbox)
    result = verifier.verify(tools.workspace)
    assert result.passed and "tampered" in result.checks[0].output  # the planted module did run, in the copy
    assert not (tools.workspace / "stolen.txt").exists() and (tools.workspace / "app.py").read_text() == "print('hello')\n"
    assert not leaked(bash(tools, "cat stolen.txt; grep -r hidden-check . ; ls").output)


# --------------------------------------------------------------------- reaching the network
@contain
def test_tcp_to_the_internet(tools):
    result = bash(tools, "exec 3<>/dev/tcp/1.1.1.1/80 && echo connected; exec 3<>/dev/tcp/8.8.8.8/53 && echo connected")
    assert "connected" not in result.output.replace("[exit code", "")


@contain
def test_udp_to_a_host_listener(tools):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(0.3)
        port = listener.getsockname()[1]
        result = bash(tools, f"for i in 1 2 3; do echo {TOKEN} > /dev/udp/127.0.0.1/{port}; done; echo sent")
        with pytest.raises(socket.timeout):
            listener.recvfrom(100)
    assert "sent" in result.output  # loopback inside is the sandbox's own: the datagrams went nowhere


@contain
def test_dns_lookup(tools):
    result = bash(tools, "getent hosts example.com pypi.org && echo resolved; cat /etc/resolv.conf >/dev/null")
    assert "resolved" not in result.output and "pypi.org" not in result.output.split("[exit")[0].replace(
        "getent hosts example.com pypi.org", "")


class _Quiet(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):
        type(self).hits += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"experiments": []}')

    def log_message(self, *args):
        pass


@contain
def test_loopback_service_like_a_tracking_server(tools):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        urlopen = __import__("urllib.request").request.urlopen
        assert urlopen(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search", timeout=5).status == 200
        before = _Quiet.hits
        result = bash(tools, f"exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET /api/2.0/mlflow/experiments/search "
                             f"HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3; python3 -c \"import urllib.request as u; "
                             f"print(u.urlopen('http://localhost:{port}/', timeout=2).status)\"")
        assert _Quiet.hits == before and "experiments" not in result.output
    finally:
        server.shutdown()


@contain
def test_abstract_unix_socket_on_the_host(tools):
    name = f"limi-abstract-{TOKEN}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind("\0" + name)
        listener.listen(1)
        listener.settimeout(0.3)
        result = bash(tools, f"python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); "
                             f"s.connect('\\0{name}'); print('connected')\"")
        with pytest.raises(socket.timeout):
            listener.accept()
    assert "connected" not in result.output


# --------------------------------------------------------------------- escaping the process session
@contain
def test_setsid_and_daemonised_processes(tools):
    result = bash(tools, "setsid sleep 1000.71 & nohup sleep 1000.72 >/dev/null 2>&1 & setsid -f sleep 1000.73; "
                         "( ( sleep 1000.74 & ) & ); disown -a; echo started")
    assert result.output.startswith("started") and gone("1000.7")


@contain
def test_double_fork_python_daemon(tools):
    daemon = ("import os, time\nif os.fork(): os._exit(0)\nos.setsid()\nif os.fork(): os._exit(0)\n"
              "os.closerange(0, 3)\ntime.sleep(1000.81)\n")
    tools.call("write_file", {"path": "daemon.py", "content": daemon})
    result = bash(tools, "python3 daemon.py; echo parent-done")
    assert "parent-done" in result.output and gone("daemon.py")


@contain
def test_background_job_left_after_the_episode(tools):
    turns = [
        {"tool_calls": [{"id": "c1", "function": {"name": "bash", "arguments": {
            "command": "nohup sleep 1000.91 >/dev/null 2>&1 & echo bg"}}}]},
        {"tool_calls": [{"id": "c2", "function": {"name": "finish", "arguments": {"summary": "left a job"}}}]},
    ]
    verifier = make_verifier(VerifierSpec(kind="tests", commands=["true"]), tools.sandbox)
    result = run_episode("start a server", ScriptedModel(turns), tools, verifier, SimulatedUser(), Limits(max_rounds=1))
    assert result.termination == "finished" and result.tool_calls == 2
    assert gone("1000.91")


@contain
def test_kill_everything_visible(tools):
    result = bash(tools, "kill -9 -1; echo survived")
    assert os.getppid() > 1 and subprocess.run(["true"], timeout=5).returncode == 0  # this process lives on
    assert bash(tools, "echo next").output.startswith("next")  # and the next command runs normally
    assert "[exit code" in result.output


# --------------------------------------------------------------------- exhausting resources
@contain
def test_fork_bomb(tools):
    result = bash(tools, "limi_bomb_r() { limi_bomb_r | limi_bomb_r & }; limi_bomb_r; sleep 60")
    assert result.is_error and "timed out" in result.output
    assert subprocess.run(["true"], timeout=5).returncode == 0 and gone("limi_bomb_r", 5)


@contain
def test_memory_balloon(tools):
    result = bash(tools, "python3 -c 'b = bytearray(2 << 30); print(\"allocated\")'")
    assert "MemoryError" in result.output and "allocated" not in result.output


@contain
def test_disk_filler_beyond_the_quota(filler_tools):
    tools = filler_tools
    quota = tools.sandbox.limits.disk_quota_mb
    result = bash(tools, f"for i in $(seq 1 {quota // 64 + 2}); do head -c 64M /dev/zero > fill$i.bin || break; done;"
                         f" head -c {quota + 8}M /dev/zero > one.bin; echo done")
    assert result.is_error and "disk quota" in result.output
    assert (tools.workspace / "one.bin").stat().st_size <= quota << 20
    bash(tools, "rm -f fill*.bin one.bin")


@contain
def test_tmp_and_shm_fillers(filler_tools):
    tools = filler_tools
    quota = tools.sandbox.limits.disk_quota_mb
    result = bash(tools, f"head -c {quota * 2}M /dev/zero > /tmp/fill; head -c {quota * 2}M /dev/zero > /dev/shm/fill; "
                         "du -m /tmp/fill /dev/shm/fill")
    sizes = [int(m.group(1)) for m in re.finditer(r"^(\d+)\s+\S*fill$", result.output, re.M)]
    assert len(sizes) == 2 and all(s <= quota for s in sizes), result.output[-500:]


@contain
def test_endless_output(tools):
    result = bash(tools, "yes limi-endless-output")
    assert result.is_error and "timed out" in result.output and "bytes cut" in result.output
    assert len(result.output) < 2 * tools.sandbox.limits.max_output_bytes


@contain
def test_command_ignoring_sigterm(tools):
    started = time.monotonic()
    result = bash(tools, "trap '' TERM; sleep 1000.61; sleep 1000.61")
    assert result.is_error and time.monotonic() - started < TIMEOUT_S + 3
    assert gone("1000.61")
