"""Counts the reliability figures and reports them at the end of the session (see figures.py)."""

from __future__ import annotations

import pytest

from tests.reliability.figures import FIGURES, REPORT


def pytest_configure(config):
    config.addinivalue_line("markers", "figure(name): one attempt counted in the reliability figure `name`")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    marker = item.get_closest_marker("figure")
    if marker is None:
        return
    report = outcome.get_result()
    # an attempt counts once: when its body ran (call), or when its set-up broke (a failed attempt)
    if report.when == "call" or (report.when == "setup" and report.failed):
        if report.skipped:
            return
        FIGURES.attempt(marker.args[0], item.name, report.passed)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if FIGURES.empty:
        return
    from pipelines.core.io import atomic_write_json

    terminalreporter.section("reliability figures")
    for line in FIGURES.table():
        terminalreporter.write_line(line)
    try:
        atomic_write_json(REPORT, FIGURES.as_json())
        terminalreporter.write_line(f"written to {REPORT}")
    except OSError as exc:
        terminalreporter.write_line(f"could not write {REPORT}: {exc}")
