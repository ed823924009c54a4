"""Bootstrap intervals and the paired comparison on seeded examples, and the champion they decide."""

import random

import pytest

from pipelines.evaluation.metrics import EpisodeOutcome, ftfc, success_rate
from pipelines.evaluation.summary import decide_champion
from pipelines.evaluation.uncertainty import agencybench_score, interval, paired_delta


def solved(task_id, model="base", trial=0, ok=True):
    """A one-query, one-requirement task met at the first response (ok) or failed after R = 3 rounds."""
    return EpisodeOutcome(task_id, model, trial, "algorithm", 1, int(ok), ok, 1 if ok else 3, 3,
                          requirements_total=1, requirements_met_first_round=int(ok), query_rounds=(1,) if ok else ())


def test_interval_is_seeded_and_brackets_the_estimate():
    # 20 tasks, 8 solved: SR = 40; a binomial share over 20 tasks has a standard error of about
    # sqrt(0.4 * 0.6 / 20) = 0.11, so the 95% interval spans roughly 40 +- 21.5 (a normal reading as a check)
    runs = [solved(f"t{i:02d}", ok=i < 8) for i in range(20)]
    lo, hi = interval(runs, success_rate, resamples=2000, seed=0)
    assert (lo, hi) == interval(runs, success_rate, resamples=2000, seed=0)  # the same seed, the same interval
    assert lo < 40 < hi and 15 <= lo <= 25 and 55 <= hi <= 65
    assert 0 <= lo and hi <= 100
    # all solved: every resample scores 100, so the interval is the point
    assert interval([solved(f"t{i}") for i in range(5)], ftfc, resamples=200) == (100.0, 100.0)
    assert interval([], ftfc) is None


def test_trials_are_resampled_within_tasks_when_k_is_above_one():
    # one task, 4 trials, 2 solved: tasks alone cannot vary (one task), trials can -> a real interval
    runs = [solved("t", trial=i, ok=i < 2) for i in range(4)]
    lo, hi = interval(runs, success_rate, resamples=1000, seed=1)
    assert lo < 50 < hi and lo >= 0 and hi <= 100
    # with one trial per task there is nothing to draw inside the task
    assert interval([solved("t")], success_rate, resamples=200) == (100.0, 100.0)


def test_paired_delta_cancels_task_difficulty():
    rng = random.Random(3)
    # 30 tasks; the tuned model solves every task the base solves plus 4 more: a small but consistent gain
    base_ok = [rng.random() < 0.5 for _ in range(30)]
    gain = [i for i, ok in enumerate(base_ok) if not ok][:4]
    base = [solved(f"t{i}", "base", ok=ok) for i, ok in enumerate(base_ok)]
    tuned = [solved(f"t{i}", "tuned", ok=ok or i in gain) for i, ok in enumerate(base_ok)]
    found = paired_delta(base, tuned, success_rate, resamples=2000, seed=0)
    assert found["delta"] == pytest.approx(100 * 4 / 30, abs=1e-4) and found["tasks"] == 30
    assert found["significant"] is True and found["interval"][0] > 0
    # unpaired, the same two score sets overlap: their own intervals do not separate
    assert interval(base, success_rate, resamples=2000)[1] > interval(tuned, success_rate, resamples=2000)[0]
    # a gain on one task of thirty is within the noise
    one = [solved(f"t{i}", "tuned", ok=ok or i == gain[0]) for i, ok in enumerate(base_ok)]
    small = paired_delta(base, one, agencybench_score, resamples=2000, seed=0)
    assert small["delta"] > 0 and small["significant"] is False and small["interval"][0] <= 0


def test_the_champion_needs_a_paired_interval_above_zero():
    numbers = {"base": {"sr_at_r": 40.0}, "tuned": {"sr_at_r": 43.3}}
    noisy = {"tuned": {"sr_at_r": {"delta": 3.3, "interval": [0.0, 10.0], "significant": False}}}
    decision = decide_champion(numbers, "base", ["tuned"], "sr_at_r", noisy)
    assert decision["winner"] is None and not decision["beats_baseline"]  # a strict > alone would have crowned it
    assert decision["differences"]["tuned"] == {"delta": 3.3, "interval": [0.0, 10.0]}
    clear = {"tuned": {"sr_at_r": {"delta": 3.3, "interval": [0.5, 6.0], "significant": True}}}
    assert decide_champion(numbers, "base", ["tuned"], "sr_at_r", clear)["winner"] == "tuned"


def test_suite_comparisons_pair_each_suite_on_its_own_tasks():
    from types import SimpleNamespace

    from pipelines.evaluation.config import EvalParams
    from pipelines.evaluation.summary import suite_comparisons

    settings = EvalParams.model_validate({"bootstrap": 1000})
    # easy: the tuned model meets the requirement of 5 of 6 tasks the base fails (a gain of 5/6 = 83.3 points);
    # hard: both fail all 4 tasks (a difference of exactly zero); the pooled delta would mix the two
    trials = []
    for i in range(6):
        for model, ok in (("base", False), ("tuned", i < 5)):
            trials.append(SimpleNamespace(task=SimpleNamespace(suite="easy"), outcome=solved(f"e{i}", model, ok=ok)))
    for i in range(4):
        for model in ("base", "tuned"):
            trials.append(SimpleNamespace(task=SimpleNamespace(suite="hard"), outcome=solved(f"h{i}", model, ok=False)))
    trials.append(SimpleNamespace(task=SimpleNamespace(suite="solo"), outcome=solved("s0", "base")))
    found = suite_comparisons(trials, ["base", "tuned"], settings)
    assert set(found) == {"easy", "hard"}  # a suite one model ran has nothing to pair
    easy = found["easy"]["tuned"]["ftfc"]
    assert easy["delta"] == pytest.approx(100 * 5 / 6, abs=1e-3) and easy["tasks"] == 6
    # a resample lacks every gained task with probability (1/6)^6, far below 2.5%: the interval is above zero
    assert easy["significant"] is True and easy["interval"][0] > 0 and easy["interval"][1] == pytest.approx(100.0)
    hard = found["hard"]["tuned"]["ftfc"]
    assert hard["delta"] == 0 and hard["significant"] is False
