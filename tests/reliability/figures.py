"""The reliability suite's figures, counted from the attempts that actually ran.

Every attempt is one test marked ``@pytest.mark.figure("<name>")``; the plugin in this folder's
``conftest.py`` counts it as tried once its body ran and as passed when it passed. Counters that
are not pass/fail (trajectories lost, duplicates, secret leaks, load timings) are added by the tests
that measure them through :data:`FIGURES`. At the end of the session the plugin prints the table
and writes ``reports/reliability.json`` atomically.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
REPORT = REPO / "reports" / "reliability.json"
# what each figure means, in the order the table prints them
FIGURE_TITLES = {
    "containment": "sandbox attempts contained",
    "faults": "faults survived",
    "bad_input": "bad inputs handled",
    "secrets": "secret checks clean",
    "load": "load runs complete",
    "answer_isolation": "canary runs as expected",
}
COUNTERS = ("trajectories_lost", "duplicates", "secret_leaks")


class Figures:
    """Thread-safe tallies: per figure tried/passed, plus counters and measurements."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.figures: dict[str, dict[str, int]] = {}
        self.counters: dict[str, int] = {}
        self.measured: dict[str, Any] = {}
        self.failed: dict[str, list[str]] = {}

    def attempt(self, figure: str, name: str, passed: bool) -> None:
        with self._lock:
            entry = self.figures.setdefault(figure, {"tried": 0, "passed": 0})
            entry["tried"] += 1
            entry["passed"] += int(passed)
            if not passed:
                self.failed.setdefault(figure, []).append(name)

    def count(self, counter: str, n: int) -> None:
        """Add ``n`` to ``counter`` (0 is recorded too: it says the counter was measured)."""
        with self._lock:
            self.counters[counter] = self.counters.get(counter, 0) + int(n)

    def measure(self, key: str, value: Any) -> None:
        with self._lock:
            self.measured[key] = value

    @property
    def empty(self) -> bool:
        return not self.figures and not self.counters and not self.measured

    def as_json(self) -> dict[str, Any]:
        order = [f for f in FIGURE_TITLES if f in self.figures] + sorted(set(self.figures) - set(FIGURE_TITLES))
        data: dict[str, Any] = {name: dict(self.figures[name]) for name in order}
        for counter in COUNTERS:
            if counter in self.counters:
                data[counter] = self.counters[counter]
        data.update(self.measured)
        return data

    def table(self) -> list[str]:
        rows = [f"{'figure':<14} {'what':<28} {'passed':>6} / {'tried':<5}"]
        for name, entry in self.as_json().items():
            if isinstance(entry, dict) and "passed" in entry:
                title = FIGURE_TITLES.get(name, name)
                mark = "" if entry["passed"] == entry["tried"] else "   <-- " + ", ".join(self.failed.get(name, []))[:200]
                rows.append(f"{name:<14} {title:<28} {entry['passed']:>6} / {entry['tried']:<5}{mark}")
        for counter in COUNTERS:
            if counter in self.counters:
                rows.append(f"{counter:<14} {'(target 0)':<28} {self.counters[counter]:>6}")
        for key, value in self.measured.items():
            rows.append(f"{key:<43} {value}")
        return rows


FIGURES = Figures()
