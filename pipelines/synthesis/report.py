"""The synthesis report (``metrics/synthesize.json``): counts, acceptance rate, every rejection and why."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from pipelines.synthesis.config import SynthesizeParams
from pipelines.synthesis.calls import CallCounter
from pipelines.synthesis.drafting import PROMPT_VERSION

if TYPE_CHECKING:
    from pipelines.synthesis.loop import Outcome

#: Rejection kinds, in the order a draft meets them; each dropped draft counts under exactly one.
REJECTIONS = ("teacher_invalid", "duplicate_of_seed", "duplicate_of_accepted", "critic_invalid",
              "rewrite_invalid", "below_bar")


def build_report(p: SynthesizeParams, targets: list[tuple[str, str]], outcomes: list[Outcome], counter: CallCounter,
                 teacher: str, critic: str) -> dict[str, Any]:
    """Counts per category, acceptance rate, rejections by kind (every kind listed), each drop's detail and the
    function calls made per role; no timings (they differ from run to run)."""
    per_category: dict[str, dict[str, Any]] = {}
    for domain, category in targets:
        row = per_category.setdefault(category, {"domain": domain, "requested": 0, "accepted": 0, "rejected": 0})
        mine = [o for o in outcomes if o.category == category and o.domain == domain]
        row["requested"] += len(mine)
        row["accepted"] += sum(o.query is not None for o in mine)
        row["rejected"] += sum(o.query is None for o in mine)
    accepted = sum(o.query is not None for o in outcomes)
    rejections = Counter(o.rejection for o in outcomes if o.rejection)
    details = Counter(f"{o.rejection}: {o.detail}" for o in outcomes if o.rejection)
    return {
        "requested": len(outcomes), "accepted": accepted, "rejected": len(outcomes) - accepted,
        "acceptance_rate": round(accepted / len(outcomes), 4) if outcomes else 0.0,
        "per_category": per_category,
        "rejections": {kind: rejections.get(kind, 0) for kind in REJECTIONS},
        "top_reasons": [{"reason": r, "count": n} for r, n in details.most_common(10)],
        "rewrites": sum(o.rewrites for o in outcomes),
        "accepted_after_rewrite": sum(o.query is not None and o.rewrites > 0 for o in outcomes),
        "dropped": [{"category": o.category, "domain": o.domain, "slot": o.slot + 1, "kind": o.rejection,
                     "reason": o.detail, "last_output": o.last_output, "drafts": o.drafts}
                    for o in outcomes if o.rejection],
        "calls": dict(counter.calls), "teacher": teacher, "critic": critic, "prompt_version": PROMPT_VERSION,
        "score_rule": p.score_rule, "min_score": p.min_score, "dup_threshold": p.dup_threshold,
    }
