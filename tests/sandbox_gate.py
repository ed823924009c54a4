"""The ``needs_bwrap`` marker: a test that needs a working bubblewrap fails without one, never skips quietly.

    pytestmark = pytest.mark.needs_bwrap        # a whole module
    @pytest.mark.needs_bwrap                     # one test
    require_bwrap_here()                         # inside a test or fixture, for one parameter of several

Where bwrap is missing or cannot create namespaces, those tests fail with the reason and the install
command, since a run that skips them says nothing about containment. ``LIMI_ALLOW_NO_SANDBOX=1``
turns the failures into skips for machines that knowingly lack bwrap, and the run's last line of
output then says how many sandbox tests were skipped. tests/conftest.py takes these hooks in.
"""

from __future__ import annotations

import os

import pytest

from pipelines.agent.sandbox.base import SandboxUnavailable
from pipelines.agent.sandbox.bwrap import require_bwrap

ALLOW_ENV = "LIMI_ALLOW_NO_SANDBOX"
SKIP_TAG = "[no sandbox]"  # starts the reason of every skip made here, which is how they are counted
_skipped = {"count": 0}


def require_bwrap_here() -> None:
    """Return when bwrap works here; otherwise fail the current test, or skip it under ``LIMI_ALLOW_NO_SANDBOX=1``."""
    try:
        require_bwrap()  # probed once per process, then cached
        return
    except SandboxUnavailable as exc:
        why = str(exc)
    if os.environ.get(ALLOW_ENV) == "1":
        pytest.skip(f"{SKIP_TAG} {why}")
    pytest.fail(f"{why}\nThis test needs the sandbox; set {ALLOW_ENV}=1 to skip such tests knowingly "
                "(containment is then not tested).", pytrace=False)


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_bwrap: needs a working bubblewrap; fails without one unless "
                                       f"{ALLOW_ENV}=1, then skips and the run says so at the end")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # before fixture set-up, so a fixture that builds a BwrapSandbox does not fail first with less to say
    if item.get_closest_marker("needs_bwrap") is not None:
        require_bwrap_here()


def pytest_runtest_logreport(report):
    if report.skipped and isinstance(report.longrepr, tuple) and SKIP_TAG in str(report.longrepr[2]):
        _skipped["count"] += 1


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    # after the summary line, so this is the last line of the run's output
    count, _skipped["count"] = _skipped["count"], 0
    if not count:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    line = (f"{ALLOW_ENV}=1: {count} sandbox test{'s were' if count != 1 else ' was'} skipped; "
            "containment is NOT tested in this run")
    if reporter is not None:
        reporter.write_line(line, yellow=True, bold=True)
    else:
        print(line)
