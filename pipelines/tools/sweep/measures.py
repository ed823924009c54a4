"""What the sweep reports besides the main metric: its measures, each ``metric`` or ``suite:metric``.

A measure ``metric`` reads the eval's overall numbers of ``metrics/eval.json``: ``headline[model][metric]``,
``intervals[model][metric]`` and the paired comparison ``comparisons[tuned][metric]``. A measure
``suite:metric`` reads one suite's: ``suites[suite][model][metric]`` and the paired comparison
``suite_comparisons[suite][tuned][metric]``. The eval gives no 95% interval of one model's score within a
suite, so a suite measure's per-seed scores have none; its verdict against the untuned model rests on the
paired comparison like an overall one.

The metrics are the eval's rates (``pipelines.evaluation.summary.RATES``, 0-100): those the eval gives with
intervals and paired comparisons. Suite names are not known before the eval ran: a measure whose suite no
experiment evaluated is reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.core.errors import UserError
from pipelines.core.schema import EvalMetrics
from pipelines.evaluation.report import labels
from pipelines.evaluation.summary import RATES

DEFAULT_MEASURES = "tool_call_validity,first_call_validity,finish_rate,easy:ftfc"


@dataclass(frozen=True)
class Measure:
    metric: str
    suite: str | None = None  # None: the overall numbers

    @property
    def key(self) -> str:
        """``metric`` or ``suite:metric``, as ``--measures`` takes it."""
        return f"{self.suite}:{self.metric}" if self.suite else self.metric

    @property
    def slug(self) -> str:
        """The key in a form MLflow accepts in a metric name (no ``:``)."""
        return f"{self.suite}.{self.metric}" if self.suite else self.metric

    def label(self, R: Any = "R", k: Any = "k") -> str:
        """How the eval report names the metric, with the suite: ``FTFC (easy suite)``."""
        name = labels(R, k).get(self.metric, self.metric)
        return f"{name} ({self.suite} suite)" if self.suite else name


def parse_measures(text: str, what: str = "--measures") -> list[Measure]:
    """``tool_call_validity,easy:ftfc`` -> measures, in order, without repeats; a UserError names ``what``."""
    found: dict[str, Measure] = {}
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        suite, _, metric = item.rpartition(":")
        if ":" in suite or (item.count(":") and not suite):
            raise UserError(f"{what}: {item!r}: expected 'metric' or 'suite:metric', e.g. finish_rate or easy:ftfc")
        if suite and not all(c.isalnum() or c in "-_." for c in suite):
            raise UserError(f"{what}: {item!r}: a suite name is letters, digits, '-', '_' and '.'")
        if metric not in RATES:
            raise UserError(f"{what}: {item!r}: unknown metric {metric!r}; known: {', '.join(RATES)}")
        measure = Measure(metric, suite or None)
        found.setdefault(measure.key, measure)
    if not found:
        raise UserError(f"{what}: no measure given (e.g. {DEFAULT_MEASURES})")
    return list(found.values())


def record_measures(record: dict[str, Any]) -> list[Measure]:
    """The measures a sweep record names (``measures``); the defaults for a record from before they existed."""
    keys = record.get("measures")
    return parse_measures(",".join(keys) if keys else DEFAULT_MEASURES, "the sweep record's measures")


def as_interval(found: Any) -> list[float] | None:
    """``[lo, hi]`` as floats, or None for anything else (no interval, or a malformed one)."""
    if isinstance(found, (list, tuple)) and len(found) == 2 and all(isinstance(v, (int, float)) for v in found):
        return [float(found[0]), float(found[1])]
    return None


def paired_entry(found: Any) -> dict[str, Any] | None:
    """A ``comparisons``-shaped entry ``{delta, interval, significant, tasks}``; None for anything else."""
    if not isinstance(found, dict):
        return None
    return {"delta": found.get("delta"), "interval": as_interval(found.get("interval")),
            "significant": found.get("significant"), "tasks": found.get("tasks")}


def _suite_score(ev: EvalMetrics, suite: str, model: str | None, metric: str) -> float | None:
    block = (ev.suites.get(suite) or {}).get(model) if model else None
    value = getattr(block, metric, None) if block is not None else None
    return float(value) if isinstance(value, (int, float)) else None


def measure_values(ev: EvalMetrics, measure: Measure, tuned: str | None, base: str | None) -> dict[str, Any]:
    """One experiment's numbers of ``measure``: the tuned model's ``score`` and ``interval``, the untuned
    model's ``base_score`` and ``base_interval`` (None when this experiment did not evaluate it), the paired
    comparison tuned - untuned (``paired``), and whether the experiment evaluated the suite (``evaluated``)."""
    metric, suite = measure.metric, measure.suite
    if suite is None:
        def score(model):
            return ev.headline.get(model, {}).get(metric) if model else None

        def interval(model):
            return as_interval((ev.intervals.get(model) or {}).get(metric)) if model else None

        pair = (ev.comparisons.get(tuned) or {}).get(metric) if tuned and base else None
        evaluated = True
    else:
        def score(model):
            return _suite_score(ev, suite, model, metric)

        def interval(model):
            return None  # the eval gives no interval of one model's score within a suite

        pair = ((ev.suite_comparisons.get(suite) or {}).get(tuned) or {}).get(metric) if tuned and base else None
        evaluated = suite in ev.suites
    return {"score": score(tuned), "interval": interval(tuned), "base_score": score(base),
            "base_interval": interval(base), "paired": paired_entry(pair), "evaluated": evaluated}
