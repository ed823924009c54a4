"""The boundary types read what the stages write, what earlier versions wrote, and the public dataset's form."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipelines.core.schema import EvalMetrics, EvalResult, TrajectoryMeta, TrajectoryRecord

MESSAGES = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]


def test_a_dataset_record_without_meta_reads():
    record = TrajectoryRecord.model_validate({"messages": MESSAGES, "tools": []})
    assert record.meta == TrajectoryMeta() and not record.meta.passed and record.meta.final is None


def test_an_older_record_keeps_its_extra_fields_and_types_are_checked():
    meta = TrajectoryMeta.model_validate({"task_id": "t", "passed": True, "final": {"score": 0.5},
                                          "timings": {"episode_s": 3.0}, "tokens": {"prompt": 7}})
    assert meta.final.score == 0.5 and not meta.final.passed and meta.tokens.completion == 0
    assert meta.model_extra == {"timings": {"episode_s": 3.0}}
    with pytest.raises(ValidationError):
        TrajectoryMeta.model_validate({"rounds_used": "many"})


def test_an_eval_trial_record_and_the_metrics_file():
    result = EvalResult.model_validate({"messages": MESSAGES, "meta": {
        "task_id": "t", "model": "base", "trial": 1, "subtasks": [{"number": 1, "passed": True}],
        "outcome": {"completed": True}}})
    assert result.meta.subtasks[0].passed and result.meta.trial == 1
    assert TrajectoryRecord.model_validate(result.model_dump()).meta.model_extra["model"] == "base"
    metrics = EvalMetrics.model_validate({"k": 1, "models": {"base": {"overall": {"sr_at_r": 20.0}}},
                                          "champion": {"metric": "sr_at_r", "baseline": "base"}})
    assert metrics.models["base"].overall.sr_at_r == 20.0 and metrics.champion.winner is None
    with pytest.raises(ValidationError):
        EvalMetrics.model_validate({"k": 1, "models": {"base": {"sr_at_r": 20.0}}})
