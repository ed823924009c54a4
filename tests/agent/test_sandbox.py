"""The sandbox exercised for real: bubblewrap, real processes, real sockets, no mocked subprocess."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from pipelines.agent.sandbox.base import SEARCH_PATH, SandboxUnavailable
from pipelines.agent.sandbox.bwrap import BwrapSandbox, _system_mounts, require_bwrap
from pipelines.agent.sandbox.factory import make_sandbox
from pipelines.agent.sandbox.plain import NoSandbox

REPO = Path(__file__).resolve().parents[2]
needs_bwrap = pytest.mark.needs_bwrap
SYSTEM_PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")


@pytest.fixture
def box(workspace) -> BwrapSandbox:
    return BwrapSandbox(workspace, timeout_s=10)


@pytest.fixture(params=[pytest.param("bwrap", marks=needs_bwrap), "none"])
def any_box(request, workspace):
    """Each sandbox kind, for the behaviour both must share."""
    return make_sandbox(request.param, workspace, timeout_s=10, kill_grace_s=0.5)


def host_pids_running(marker: str) -> list[int]:
    """Host processes whose command line contains ``marker``, read straight from the host's /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def wait_until_gone(marker: str, within_s: float = 2.0) -> list[int]:
    """The processes still carrying ``marker`` after up to ``within_s`` (killed ones need a moment to be reaped)."""
    deadline = time.monotonic() + within_s
    while (left := host_pids_running(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


# --- behaviour both sandboxes share --------------------------------------------------------------------

def test_exit_code_and_merged_output(any_box, workspace):
    result = any_box.run("echo out; echo err >&2; pwd; exit 3")
    assert result.exit_code == 3
    assert result.output == f"out\nerr\n{workspace.resolve()}\n"
    assert not result.timed_out and result.truncated_bytes == 0 and not result.quota_exceeded


def test_environment_is_cleared(any_box, workspace, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-limi-marker-4711")
    monkeypatch.setenv("LIMI_SECRET_MARKER", "limi-marker-4711")
    output = any_box.run("env").output
    assert "limi-marker-4711" not in output
    assert f"HOME={workspace.resolve()}\n" in output and "TERM=dumb\n" in output


def test_sleeping_command_times_out(any_box):
    result = any_box.run("sleep 30", timeout_s=1)
    assert result.timed_out
    assert result.duration_s < 3
    assert "[command timed out after 1 s and was killed]" in result.output


def test_command_ignoring_sigterm_is_killed(any_box):
    result = any_box.run("trap '' TERM; echo trapped; sleep 1000.31; sleep 1000.31", timeout_s=1)
    assert result.timed_out and result.output.startswith("trapped\n")
    assert result.duration_s < 1 + 0.5 + 1.5  # timeout, grace, slack
    assert wait_until_gone("1000.31") == []


def test_closed_output_does_not_skip_the_clock(any_box):
    result = any_box.run("exec >/dev/null 2>&1; sleep 30", timeout_s=1)
    assert result.timed_out and result.duration_s < 3


def test_same_group_background_jobs_are_killed(any_box):
    result = any_box.run("sleep 1000.41 & nohup sleep 1000.42 >/dev/null 2>&1 & echo started")
    assert result.output == "started\n" and result.duration_s < 2
    assert wait_until_gone("1000.4") == []


def test_output_keeps_head_and_tail_with_a_note(workspace):
    total = len("".join(f"{i}\n" for i in range(1, 10001)))
    for box in _boxes(workspace, max_output_bytes=100):
        result = box.run("seq 1 10000")
        assert result.truncated_bytes == total - 100
        head, rest = result.output.split("[... ", 1)
        count, tail = rest.split(" bytes cut ...]\n", 1)
        assert int(count) == total - 100
        assert head.startswith("1\n2\n3\n") and len(head.rstrip("\n").encode()) <= 50
        assert tail.endswith("9999\n10000\n") and len(tail.encode()) == 50


def test_invalid_utf8_is_replaced(any_box):
    assert any_box.run(r"printf 'ok \377\376 done'").output == "ok \ufffd\ufffd done"


@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="needs a system python3 to allocate memory")
def test_memory_limit_applies_per_process(workspace):
    for box in _boxes(workspace, memory_mb=256):
        small = box.run(f"{SYSTEM_PYTHON} -c 'b = bytearray(64 << 20); print(\"ok\")'")
        assert small.exit_code == 0 and small.output == "ok\n"
        big = box.run(f"{SYSTEM_PYTHON} -c 'b = bytearray(512 << 20)'")
        assert big.exit_code != 0 and "MemoryError" in big.output


def test_file_size_limit_and_disk_quota(workspace):
    for box in _boxes(workspace, disk_quota_mb=2):
        too_big = box.run("head -c 3M /dev/zero > big.bin")
        assert too_big.exit_code != 0 and (workspace / "big.bin").stat().st_size <= 2 << 20
        box.run("rm -f big.bin")
        over = box.run("for i in 1 2 3; do head -c 1M /dev/zero > part$i.bin; done; echo wrote")
        assert over.quota_exceeded and over.output.startswith("wrote\n")
        assert "[workspace is over its 2 MB disk quota" in over.output
        assert not box.run("rm part*.bin").quota_exceeded


def test_make_sandbox_kinds(workspace):
    settings = {"timeout_s": 5, "network": False, "hide_paths": [workspace / ".dvc"], "max_processes": 64}
    plain = make_sandbox("none", workspace, **settings)  # isolation-only settings do not get in the way
    assert isinstance(plain, NoSandbox) and plain.limits.timeout_s == 5
    if BwrapSandbox.available():
        assert isinstance(make_sandbox("bwrap", workspace, **settings), BwrapSandbox)
    with pytest.raises(ValueError, match="bwrap, none"):
        make_sandbox("docker", workspace)


def test_missing_bwrap_names_the_install_command(workspace):
    assert not BwrapSandbox.available("/nonexistent/bwrap")
    with pytest.raises(SandboxUnavailable, match="sudo apt-get install bubblewrap"):
        require_bwrap("/nonexistent/bwrap")
    with pytest.raises(SandboxUnavailable, match="sudo apt-get install bubblewrap"):
        make_sandbox("bwrap", workspace, executable="/nonexistent/bwrap")


def test_scratch_run_sees_the_workspace_and_writes_nothing_back(any_box, workspace):
    (workspace / "app.py").write_text("print('hello')\n")
    os.mkfifo(workspace / "pipe")  # a FIFO the agent left must not block the copy
    (workspace / "link").symlink_to("app.py")
    scratch_dirs = set(Path(tempfile.gettempdir()).glob("limi-scratch-*"))
    result = any_box.run("cat app.py; readlink link; echo changed > app.py; echo new > planted.txt; mkdir made; "
                         "rm link; echo home > ~/home.txt; pwd", scratch=True)
    assert result.exit_code == 0 and result.output.startswith("print('hello')\napp.py\n"), result.output
    assert (workspace / "app.py").read_text() == "print('hello')\n" and (workspace / "link").is_symlink()
    assert sorted(p.name for p in workspace.iterdir()) == ["app.py", "link", "pipe"]
    assert set(Path(tempfile.gettempdir()).glob("limi-scratch-*")) == scratch_dirs  # the copy is gone
    # bwrap binds the copy at the workspace's own path; the 'none' sandbox can only run in the copy's
    workdir = result.output.splitlines()[-1]
    assert (workdir == str(workspace)) == isinstance(any_box, BwrapSandbox)
    assert any_box.run("echo kept > kept.txt").exit_code == 0 and (workspace / "kept.txt").exists()


# --- what only bubblewrap contains ----------------------------------------------------------------------

@needs_bwrap
def test_workspace_is_writable(box, workspace):
    result = box.run("echo hi > made.txt && mkdir -p sub/dir && touch sub/dir/x && ln -s made.txt link")
    assert result.exit_code == 0, result.output
    assert (workspace / "made.txt").read_text() == "hi\n" and (workspace / "sub/dir/x").exists()


@needs_bwrap
def test_writes_outside_the_workspace_fail(box, tmp_path):
    targets = [Path("/etc/limi-probe"), Path("/usr/limi-probe"), Path("/limi-probe"), Path("/dev/limi-probe")]
    for target in targets:
        result = box.run(f"echo x > {target}")
        assert result.exit_code != 0 and "Read-only file system" in result.output, (target, result.output)
        assert not target.exists()
    for target in [Path.home() / "limi-probe", Path("/var/limi-probe")]:  # not mounted: no folder to write into
        result = box.run(f"echo x > {target}")
        assert result.exit_code != 0 and "No such file or directory" in result.output and not target.exists()
    # next to the workspace lies the private /tmp: writable inside, invisible to the host
    sibling = tmp_path / "sibling.txt"
    box.run(f"echo x > {sibling}")
    assert not sibling.exists()


@needs_bwrap
def test_sensitive_paths_are_hidden(workspace):
    outside = Path(tempfile.mkdtemp(prefix="limi-hide-", dir="/var/tmp"))
    try:
        (outside / "secret.txt").write_text("outside-secret")
        dvc = workspace / ".dvc"
        dvc.mkdir()
        (dvc / "config.local").write_text("dvc-secret")
        box = BwrapSandbox(workspace, hide_paths=[outside, dvc])
        result = box.run(f"ls -A /root /home {outside} .dvc; cat {outside}/secret.txt .dvc/config.local; "
                         "touch .dvc/new")
        assert "outside-secret" not in result.output and "dvc-secret" not in result.output
        assert "No such file" in result.output and "Read-only file system" in result.output
        assert (dvc / "config.local").read_text() == "dvc-secret" and not (dvc / "new").exists()
        assert box.run("echo still > out.txt").exit_code == 0  # the workspace itself stays writable
        # a workspace inside a hidden folder (a checkout under /home, say) is still there and writable
        inner = BwrapSandbox(outside / "ws", hide_paths=[outside])
        result = inner.run("echo x > made.txt && ls -A ..")
        assert result.output == "ws\n" and (outside / "ws" / "made.txt").exists()
    finally:
        shutil.rmtree(outside)


@needs_bwrap
def test_only_the_allowlist_is_mounted(box):
    # the repository (reference solutions, .git, mlflow.db, models/), the venv and the host's other folders
    venv_python = Path(sys.executable)
    absent = [REPO, REPO / ".git", venv_python, venv_python.resolve(), Path("/root"), Path("/home"), Path("/work"),
              Path("/opt"), Path("/var"), Path("/srv"), Path("/mnt"), Path("/run"), Path("/etc/shadow")]
    for path in absent:
        result = box.run(f"test -e {path} || echo absent; ls -d {path}")
        assert result.output.startswith("absent\n") and "No such file or directory" in result.output, (path, result)
    listing = box.run("ls /").output.split()
    assert set(listing) <= {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "proc", "dev", "tmp"}


@needs_bwrap
def test_a_read_only_bind_adds_one_named_folder(workspace):
    tool = Path(tempfile.mkdtemp(prefix="limi-tool-", dir="/var/tmp"))
    beside = tool.parent / (tool.name + "-beside")
    beside.mkdir()
    try:
        (tool / "bin").mkdir()
        (tool / "bin" / "hello").write_text("#!/bin/sh\necho hello from the tool\n")
        (tool / "bin" / "hello").chmod(0o755)
        box = BwrapSandbox(workspace, ro_binds={"/opt/tool": tool}, env={"PATH": f"/opt/tool/bin:{SEARCH_PATH}"})
        result = box.run("hello; ls -A /opt; touch /opt/tool/new; ls -d " + str(tool) + " " + str(beside))
        assert result.output.startswith("hello from the tool\ntool\n"), result.output  # only the named folder
        assert "Read-only file system" in result.output and not (tool / "new").exists()
        assert result.output.count("No such file or directory") == 2  # not at its host path, nor its neighbours
        assert box.run("hello", scratch=True).output == "hello from the tool\n"  # scratch runs see it too
        for target, why in (("/usr/local/x", "overlaps /usr"), (str(workspace / "x"), "overlaps"),
                            ("/", "absolute path below /"), ("opt/x", "absolute path below /"), ("/tmp/x", "overlaps /tmp")):
            with pytest.raises(ValueError, match=why):
                BwrapSandbox(workspace, ro_binds={target: tool})
        with pytest.raises(ValueError, match="not a folder"):
            BwrapSandbox(workspace, ro_binds={"/opt/x": tool / "missing"})
        # without isolation there is nothing to bind: the option is dropped, the host folder used in place
        assert isinstance(make_sandbox("none", workspace, ro_binds={"/opt/tool": tool}), NoSandbox)
    finally:
        shutil.rmtree(tool)
        shutil.rmtree(beside)


@needs_bwrap
def test_canary_outside_the_workspace_cannot_be_read(box, workspace):
    outside = Path(tempfile.mkdtemp(prefix="limi-canary-", dir="/var/tmp"))  # not under the private /tmp
    canary = outside / "canary.txt"
    canary.write_text("limi-canary-6113\n")
    try:
        result = box.run(f"cat {canary}; ls {outside}")
        assert "limi-canary-6113" not in result.output and "No such file or directory" in result.output
        # the control: the same read in the same sandbox with the host's root underneath, as before the allowlist
        allowlist = len(_system_mounts())
        argv = [box._prefix[0], "--ro-bind", "/", "/", *box._prefix[1 + allowlist:], "cat", str(canary)]
        control = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={"PATH": SEARCH_PATH})
        assert control.returncode == 0 and control.stdout == "limi-canary-6113\n", control.stderr
    finally:
        shutil.rmtree(outside)


@needs_bwrap
def test_system_commands_work_inside(box):
    script = textwrap.dedent("""
        set -e
        python3 -c 'import json, ssl, sqlite3; print(1)'
        git init -q && git config user.email t@example.com && git config user.name t
        printf 'b\\na\\n' > f.txt && git add f.txt && git commit -qm first && git log --format=%s
        awk '{print toupper($0)}' f.txt | sort | tr '\\n' ' '; echo
        sed 's/a/z/' f.txt > g.txt; diff f.txt g.txt > d.patch || true; patch -s f.txt < d.patch; cat f.txt | grep -c z
        find . -name g.txt; tar cf t.tar f.txt && tar tf t.tar; ls -l f.txt | wc -l
    """)
    result = box.run(script)
    assert result.exit_code == 0, result.output
    assert result.output == "1\nfirst\nA B \n1\n./g.txt\nf.txt\n1\n", result.output


@needs_bwrap
def test_no_capabilities_and_own_pid_namespace(box):
    output = box.run("grep CapEff /proc/self/status; ls /proc | grep -c '^[0-9]'").output.split()
    assert output[:2] == ["CapEff:", "0000000000000000"]
    assert int(output[2]) < 10  # the host's processes are not visible


@needs_bwrap
def test_network_is_unreachable(workspace):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        command = f"exec 3<>/dev/tcp/127.0.0.1/{server.getsockname()[1]} && echo connected"
        assert NoSandbox(workspace).run(command).output == "connected\n"  # the listener really is there
        assert BwrapSandbox(workspace, network=True).run(command).output == "connected\n"
        result = BwrapSandbox(workspace).run(command)
        assert result.exit_code != 0 and "connected" not in result.output


@needs_bwrap
def test_fork_bomb_is_contained(workspace):
    box = BwrapSandbox(workspace, timeout_s=3, max_processes=64, kill_grace_s=0.5)
    result = box.run("limi_bomb_7f3a() { limi_bomb_7f3a | limi_bomb_7f3a & }; limi_bomb_7f3a; sleep 60")
    assert result.timed_out and result.duration_s < 3 + 0.5 + 2
    assert "Resource temporarily unavailable" in result.output  # the task limit bit, not just the clock
    assert subprocess.run(["true"], timeout=5).returncode == 0
    assert wait_until_gone("limi_bomb_7f3a") == []


@needs_bwrap
def test_no_process_survives_the_command(box):
    script = ("sleep 1000.51 & setsid sleep 1000.52 & nohup sleep 1000.53 >/dev/null 2>&1 & "
              "setsid -f sleep 1000.54 >/dev/null 2>&1; ( ( sleep 1000.55 & ) & ); disown -a; echo started")
    result = box.run(script)
    assert result.output == "started\n" and result.duration_s < 2
    assert wait_until_gone("1000.5") == []


@needs_bwrap
def test_a_gigabyte_of_output_is_capped_in_bounded_memory(workspace):
    box = BwrapSandbox(workspace, timeout_s=60)
    Path("/proc/self/clear_refs").write_text("5")  # reset this process's peak RSS
    result = box.run("yes abcdefghij | head -c 1000000000")
    peak_mb = _status_kib("VmHWM") / 1024
    assert result.exit_code == 0 and not result.timed_out
    assert result.truncated_bytes == 1_000_000_000 - 16_000
    assert "[... 999984000 bytes cut ...]" in result.output and len(result.output) < 16_100
    assert peak_mb < _status_kib("VmRSS") / 1024 + 64, f"peak RSS {peak_mb:.0f} MB"


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="switches to an unprivileged user")
def test_process_limit_as_an_unprivileged_user():
    """The non-root path: RLIMIT_NPROC inside the sandbox's user namespace, no cgroup involved."""
    tmp_path = Path(tempfile.mkdtemp(prefix="limi-nobody-"))  # pytest's own tmp tree is private to root
    tmp_path.chmod(0o777)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from pipelines.agent.sandbox.bwrap import BwrapSandbox
        box = BwrapSandbox(Path({str(tmp_path / "ws")!r}), timeout_s=2, max_processes=20, kill_grace_s=0.2)
        result = box.run("for i in $(seq 40); do sleep 1000.61 & done; wait")
        print(result.timed_out, "Resource temporarily unavailable" in result.output)
    """)
    try:
        done = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", sys.executable,
                               "-c", script], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    finally:
        shutil.rmtree(tmp_path)
    if "cannot create a sandbox here" in done.stderr:
        pytest.skip("unprivileged user namespaces are disabled here")
    assert done.stdout == "True True\n", done.stderr[-2000:]
    assert wait_until_gone("1000.61") == []


def _boxes(workspace: Path, **limits) -> list:
    """Both sandbox kinds with the same limits (bwrap only where it works)."""
    boxes = [NoSandbox(workspace, **limits)]
    if BwrapSandbox.available():
        boxes.append(BwrapSandbox(workspace, **limits))
    return boxes


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)
