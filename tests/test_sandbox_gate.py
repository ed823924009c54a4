"""The ``needs_bwrap`` gate (tests/sandbox_gate.py) in real pytest runs of a tiny test file, with bwrap
hidden from PATH: such tests fail with the install command, or under ``LIMI_ALLOW_NO_SANDBOX=1`` skip
and the run's last line says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = '''
import pytest

from tests.sandbox_gate import require_bwrap_here


@pytest.mark.needs_bwrap
def test_marked():
    pass


@pytest.mark.parametrize("kind", [pytest.param("bwrap", marks=pytest.mark.needs_bwrap), "none"])
def test_each_kind(kind):
    pass


def test_inline():
    require_bwrap_here()
'''


def run_tiny(tmp_path: Path, *, path: str, allow: bool) -> subprocess.CompletedProcess:
    """pytest on the tiny file with the gate loaded as a plugin, PATH as given (``/nonexistent`` hides bwrap)."""
    (tmp_path / "test_tiny.py").write_text(TINY)
    env = {"PATH": path, "PYTHONPATH": str(REPO), "HOME": str(tmp_path)}
    if allow:
        env["LIMI_ALLOW_NO_SANDBOX"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.sandbox_gate",
                           "test_tiny.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_without_bwrap_the_sandbox_tests_fail_with_the_install_command(tmp_path):
    done = run_tiny(tmp_path, path="/nonexistent", allow=False)
    assert done.returncode == 1, done.stdout[-3000:]
    assert done.stdout.count("sudo apt-get install bubblewrap") >= 3 and "LIMI_ALLOW_NO_SANDBOX=1" in done.stdout
    assert done.stdout.rstrip().splitlines()[-1].startswith("1 failed, 1 passed, 2 errors in"), done.stdout[-3000:]


def test_allowing_no_sandbox_skips_them_and_says_so_last(tmp_path):
    done = run_tiny(tmp_path, path="/nonexistent", allow=True)
    assert done.returncode == 0, done.stdout[-3000:]
    lines = done.stdout.rstrip().splitlines()
    assert lines[-2].startswith("1 passed, 3 skipped in"), done.stdout[-3000:]
    assert lines[-1] == ("LIMI_ALLOW_NO_SANDBOX=1: 3 sandbox tests were skipped; "
                         "containment is NOT tested in this run")


@pytest.mark.needs_bwrap
def test_with_bwrap_nothing_is_skipped_and_nothing_is_said(tmp_path):
    done = run_tiny(tmp_path, path=os.environ.get("PATH", "/usr/bin:/bin"), allow=True)
    assert done.returncode == 0 and "LIMI_ALLOW_NO_SANDBOX" not in done.stdout, done.stdout[-3000:]
    assert done.stdout.rstrip().splitlines()[-1].startswith("4 passed in")
