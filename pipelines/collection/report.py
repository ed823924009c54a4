"""``data/trajectories/report.json``: what the episodes file holds, counted (a function of the records only)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pipelines.core.schema import TrajectoryMeta


def build_report(records: list[dict[str, Any]], planned: int) -> dict[str, Any]:
    """Counts by outcome, teacher, category, source and termination, and token totals, over ``records``
    (every episode recorded so far, resumed runs included, in plan order) against the ``planned`` number."""
    metas = [TrajectoryMeta.model_validate(r["meta"]) for r in records]
    outcome = Counter("infra_error" if m.termination == "infra_error" else ("passed" if m.passed else "failed")
                      for m in metas)
    by = lambda key: dict(Counter(str(getattr(m, key)) for m in metas))  # noqa: E731
    return {
        "episodes": len(metas), "planned": planned,
        "outcome": dict(outcome), "passed": outcome.get("passed", 0),
        "by_teacher": by("teacher"), "passed_by_teacher": dict(Counter(m.teacher for m in metas if m.passed)),
        "by_category": by("category"), "by_source": by("source"), "by_termination": by("termination"),
        "first_round_passed": sum(1 for m in metas if m.first_round and m.first_round.passed),
        "tokens": {"prompt": sum(m.tokens.prompt for m in metas),
                   "completion": sum(m.tokens.completion for m in metas),
                   "cached": sum(m.tokens.cached for m in metas)},
    }
