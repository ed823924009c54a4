"""The sweep's statistics: the main metric (or a measure) per (teacher subset, size) over seeds, the untuned
model as the cell of size 0, and when a difference counts.

Two questions, two rules:

- **Δ vs previous size** (one trained model against another): the difference counts only when it is larger
  than the spread over seeds (the larger sample standard deviation of the two cells). Within the spread it
  is "no significant difference", as the eval says of an interval that reaches zero; with one seed there is
  no spread and nothing is claimed.
- **Δ vs untuned**: the eval's own paired 95% interval of tuned − untuned (``comparisons`` in
  ``metrics/eval.json``: the same tasks drawn for both models in every resample). It exists for the
  experiments that evaluated the untuned model next to the tuned one: every experiment by default
  (``--baseline every``), the first only with ``--baseline once``.

With several seeds, the report reads **the per-seed intervals**, not an interval of the mean across seeds,
and a cell's difference lies above zero only when every seed's paired interval does (below zero likewise;
anything else is no significant difference). Why: the seeds retrain the model but evaluate it on the same
tasks, so their intervals share the task sampling and are not independent; ``metrics/eval.json`` holds only
their endpoints, and combining endpoints into an interval of the mean would have to assume independence
(too narrow an interval here) and normality (which the eval's percentile bootstrap does not assume). Every
seed on its own side of zero is the claim the numbers support without either assumption.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

NO_DIFFERENCE = "no significant difference"


@dataclass
class Cell:
    """One (teacher subset, size): the main metric over seeds, with each seed's eval interval and paired
    comparison against the untuned model (None where its eval has none)."""

    teachers: str
    size: int
    values: list[float]
    seeds: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    intervals: list[list[float] | None] = field(default_factory=list)
    paired: list[dict[str, Any] | None] = field(default_factory=list)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def spread(self) -> float | None:
        """Sample standard deviation over seeds; None with fewer than two."""
        return statistics.stdev(self.values) if len(self.values) >= 2 else None


@dataclass
class Comparison:
    delta: float | None
    spread: float | None
    significant: bool | None  # None: no spread to compare with (one seed) or no value

    @property
    def label(self) -> str:
        if self.delta is None:
            return "n/a"
        if self.significant is None:
            return "not assessed (one seed)"
        return "yes (beyond seed spread)" if self.significant else f"{NO_DIFFERENCE} (within seed spread)"


def compare(new: Cell, old: Cell | None, old_fixed: float | None = None) -> Comparison:
    """``new`` minus ``old`` (or a fixed reference value such as the untuned baseline).

    The difference counts as significant only when it is larger than the spread over seeds, the larger
    of the two cells' standard deviations (a fixed reference has none). With one seed there is no spread
    and nothing is claimed.
    """
    ref = old.mean if old is not None else old_fixed
    if new.mean is None or ref is None:
        return Comparison(None, None, None)
    delta = new.mean - ref
    spreads = [new.spread] + ([old.spread] if old is not None else [])
    if any(s is None for s in spreads):
        return Comparison(delta, None, None)
    spread = max(spreads)  # type: ignore[type-var]
    return Comparison(delta, spread, abs(delta) > spread + 1e-12)


@dataclass
class Paired:
    """A cell against the untuned model by the eval's paired intervals: per seed that has one, its delta and
    interval; ``seeds`` is how many seeds the cell has in all."""

    deltas: dict[int, float | None]
    intervals: dict[int, list[float]]
    seeds: int

    @property
    def above(self) -> int:
        return sum(1 for lo, _ in self.intervals.values() if lo > 0)

    @property
    def below(self) -> int:
        return sum(1 for _, hi in self.intervals.values() if hi < 0)

    @property
    def significant(self) -> bool | None:
        """True when every seed's paired interval lies above zero; None without any interval."""
        if not self.intervals:
            return None
        return self.above == len(self.intervals)

    @property
    def verdict(self) -> str:
        """``above zero`` or ``below zero`` when every paired seed's interval is, ``no significant difference``
        otherwise, ``n/a`` without a paired interval."""
        n = len(self.intervals)
        if not n:
            return "n/a"
        return "above zero" if self.above == n else "below zero" if self.below == n else NO_DIFFERENCE

    @property
    def count(self) -> str:
        """How many seeds have a paired interval, and how many of those lie above zero: ``3 of 3 (2 above zero)``."""
        return f"{len(self.intervals)} of {self.seeds}" + (f" ({self.above} above zero)" if self.intervals else "")

    @property
    def label(self) -> str:
        """Above or below zero when every paired seed's interval is, else no significant difference; with
        several seeds, how many lie above zero and how many have a paired interval at all."""
        n = len(self.intervals)
        if not n:
            return "n/a (no paired interval)"
        notes = []
        if self.above == n:
            verdict = "above zero"
            notes += [f"all {n} seeds"] if n > 1 else []
        elif self.below == n:
            verdict = "below zero"
            notes += [f"all {n} seeds"] if n > 1 else []
        else:
            verdict = NO_DIFFERENCE
            notes += [f"above zero in {self.above} of {n} seeds"] if self.above else []
        if n < self.seeds:
            notes.append(f"{n} of {self.seeds} seeds paired")
        return verdict + (f" ({'; '.join(notes)})" if notes else "")


def paired(cell: Cell) -> Paired:
    """The cell's paired comparisons against the untuned model, per seed (see the module docstring)."""
    deltas: dict[int, float | None] = {}
    intervals: dict[int, list[float]] = {}
    for seed, found in zip(cell.seeds, cell.paired):
        if not found:
            continue
        deltas[seed] = found.get("delta")
        if found.get("interval"):
            intervals[seed] = found["interval"]
    return Paired(deltas, intervals, len(cell.values))


def numbers(row: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    """A row's numbers of the main metric (``key`` None: the row itself) or of measure ``key``."""
    return row if key is None else (row.get("measures") or {}).get(key) or {}


def build_cells(rows: list[dict[str, Any]], key: str | None = None) -> list[Cell]:
    """Group successful points by (teachers, size); cells sorted by subset, then size. ``key``: a measure's
    numbers instead of the main metric's (a point without a value of it is left out)."""
    cells: dict[tuple[str, int], Cell] = {}
    for row in rows:
        found = numbers(row, key)
        if found.get("score") is None:
            continue
        cell = cells.setdefault((row["teachers"], row["size"]), Cell(row["teachers"], row["size"], []))
        cell.values.append(float(found["score"]))
        cell.seeds.append(row["seed"])
        cell.intervals.append(found.get("interval"))
        cell.paired.append(found.get("paired"))
        if row.get("kept") is not None:
            cell.kept.append(int(row["kept"]))
    return [cells[k] for k in sorted(cells)]


BASE = "untuned"  # the teachers label of the untuned model's cell


def base_cell(rows: list[dict[str, Any]], key: str | None = None) -> Cell | None:
    """The untuned model as a cell of size 0: one value per experiment that evaluated it (with that
    experiment's seed and interval), in the sweep's order; None when none did."""
    cell = Cell(BASE, 0, [])
    for row in rows:
        found = numbers(row, key)
        if found.get("base_score") is None:
            continue
        cell.values.append(float(found["base_score"]))
        cell.seeds.append(row["seed"])
        cell.intervals.append(found.get("base_interval"))
    return cell if cell.values else None
