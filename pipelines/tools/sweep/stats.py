"""The sweep's statistics: the main metric per (teacher subset, size) over seeds, and when a difference counts."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Cell:
    """One (teacher subset, size): the main metric over seeds."""

    teachers: str
    size: int
    values: list[float]
    seeds: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)

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
        return "yes" if self.significant else "no (within seed spread)"


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


def build_cells(rows: list[dict[str, Any]]) -> list[Cell]:
    """Group successful points by (teachers, size); cells sorted by subset, then size."""
    cells: dict[tuple[str, int], Cell] = {}
    for row in rows:
        if row.get("score") is None:
            continue
        cell = cells.setdefault((row["teachers"], row["size"]), Cell(row["teachers"], row["size"], []))
        cell.values.append(float(row["score"]))
        cell.seeds.append(row["seed"])
        if row.get("kept") is not None:
            cell.kept.append(int(row["kept"]))
    return [cells[k] for k in sorted(cells)]
