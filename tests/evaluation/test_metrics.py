"""Eval metrics against small examples worked out by hand (the arithmetic is in the comments)."""

import pytest

from pipelines.evaluation.metrics import (
    EpisodeOutcome, agencybench_average, finish_rate, first_call_validity, ftfc, ftfc_pooled, metrics_block,
    remaining_chances_pooled, success_rate_pooled, infra_error_rate, mean_seconds, mean_steps, mean_tokens, pass_at_k,
    pass_at_k_estimate, pass_hat_k, pass_hat_k_estimate, remaining_chances, success_rate, summarize,
    tasks_with_k_trials, tool_call_validity)


def outcome(task_id, trial=0, *, model="base", category="algorithm", total=2, met=0, completed=False, rounds=3,
            max_rounds=3, infra=False, calls=0, invalid=0, steps=0, tokens=0, seconds=0.0, first_call=None,
            finishes=0, missed=0):
    """A trial whose queries each hold one requirement and are all completed in ``rounds`` rounds, or none is."""
    done = (rounds,) * total if completed and rounds >= 1 else ()
    return EpisodeOutcome(task_id, model, trial, category, total, met, completed, rounds, max_rounds, infra, calls,
                          invalid, steps, tokens, seconds, requirements_total=total, requirements_met_first_round=met,
                          query_rounds=done, first_call_valid=first_call, finish_calls=finishes,
                          missed_calls=missed)


def trial(task_id, requirements, met, query_rounds, *, queries=3, trial=0, max_rounds=3, infra=False):
    """A trial with ``queries`` queries holding ``requirements`` requirements in all; ``query_rounds`` lists
    the rounds of each completed query (a prefix: the trial stops at the first query it cannot complete)."""
    return EpisodeOutcome(task_id, "base", trial, "algorithm", queries, 0, len(query_rounds) == queries,
                          max(query_rounds, default=max_rounds), max_rounds, infra, requirements_total=requirements,
                          requirements_met_first_round=met, query_rounds=tuple(query_rounds))


# R = 3. Task a: 2 of 3 requirements in round 1, completed in round 2. Task b: failed, nothing in round 1.
# Task c: trial 0 broke in the harness (infra error), trial 1 solved everything in round 1.
MIXED = [
    outcome("a", total=3, met=2, completed=True, rounds=2, calls=10, invalid=1, steps=8, tokens=1000, seconds=10),
    outcome("b", total=2, met=0, completed=False, rounds=3, calls=5, invalid=2, steps=12, tokens=3000, seconds=20),
    outcome("c", 0, category="research", total=2, met=0, rounds=0, infra=True, calls=4, invalid=4, steps=100,
            tokens=99_999, seconds=999),
    outcome("c", 1, category="research", total=2, met=2, completed=True, rounds=1, calls=5, invalid=0, steps=4,
            tokens=500, seconds=30),
]


def test_agencybench_scores_skip_the_infra_error():
    # FTFC = mean(2/3, 0/2, 2/2) = (0.6667 + 0 + 1) / 3 = 0.5556 -> 55.56 (c's infra trial is not a 0)
    assert ftfc(MIXED) == pytest.approx(100 * (2 / 3 + 0 + 1) / 3)
    # SR@3 = tasks completed: a yes, b no, c yes -> 2/3 -> 66.67
    assert success_rate(MIXED) == pytest.approx(200 / 3)
    # RC@3 over the successes: a (3-2)/(3-1) = 0.5, c (3-1)/(3-1) = 1 -> 0.75 -> 75
    assert remaining_chances(MIXED) == pytest.approx(75.0)
    # average = (55.56 + 66.67 + 75) / 3 = 65.74
    assert agencybench_average(ftfc(MIXED), success_rate(MIXED), remaining_chances(MIXED)) == pytest.approx(
        (100 * (2 / 3 + 1) / 3 + 200 / 3 + 75) / 3)
    assert agencybench_average(ftfc(MIXED), success_rate(MIXED), remaining_chances(MIXED)) == pytest.approx(65.74,
                                                                                                           abs=0.01)


def test_costs_and_infra_error_rate():
    # tool calls of scored episodes: 10 + 5 + 5 = 20, invalid 1 + 2 + 0 = 3 -> 17/20 = 85 %
    assert tool_call_validity(MIXED) == pytest.approx(85.0)
    assert mean_steps(MIXED) == pytest.approx((8 + 12 + 4) / 3)       # 8
    assert mean_tokens(MIXED) == pytest.approx((1000 + 3000 + 500) / 3)  # 1500
    assert mean_seconds(MIXED) == pytest.approx((10 + 20 + 30) / 3)      # 20
    assert infra_error_rate(MIXED) == pytest.approx(25.0)              # 1 of 4 episodes


# Tool use before success. Task e: trial 0 opened with a valid call and finished; trial 1 opened with a call
# that did not fit its tool and never finished; trial 2 broke in the harness (left out). Task f: trial 0 opened
# with a format error, then called finish twice; trial 1 ended before the model's first turn (no value).
TOOL_USE = [
    outcome("e", 0, calls=3, first_call=True, finishes=1),
    outcome("e", 1, calls=2, invalid=2, first_call=False),
    outcome("e", 2, infra=True, rounds=0, calls=1, first_call=True, finishes=1),
    outcome("f", 0, calls=4, invalid=1, first_call=False, finishes=2),
    outcome("f", 1),
]


def test_first_call_validity_and_finish_rate_by_hand():
    # first-call validity over the scored trials with a first turn: e0 yes, e1 no, f0 no -> 1/3
    assert first_call_validity(TOOL_USE) == pytest.approx(100 / 3)
    # finish rate over the 4 scored trials (f1 counts, it never finished): e0 and f0 -> 2/4 (f0's two calls count once)
    assert finish_rate(TOOL_USE) == 50.0
    # tool-call validity pools the calls of scored trials instead: (3 + 2 + 4) calls, 3 invalid -> 6/9
    assert tool_call_validity(TOOL_USE) == pytest.approx(200 / 3)
    block = metrics_block(TOOL_USE, k=1)
    assert block["first_call_validity"] == pytest.approx(100 / 3) and block["finish_rate"] == 50.0
    assert block["tool_call_validity"] == pytest.approx(200 / 3)
    # none of them has a value without a scored trial; finish rate is 0 where no trial finished
    broken = [outcome("a", infra=True, rounds=0, calls=1, first_call=True, finishes=1)]
    assert first_call_validity(broken) is None and finish_rate(broken) is None and finish_rate([]) is None
    assert first_call_validity([outcome("a")]) is None and finish_rate([outcome("a")]) == 0.0


def test_tool_call_validity_counts_the_calls_not_made():
    # g0: 4 calls, 1 rejected, and 2 turns that did not parse -> due 6, valid 3; g1: prose only, 3 turns -> due 3,
    # valid 0. Pooled: 3 valid of 9 due -> 33.3 (the parsed calls alone would say 3 of 4 -> 75)
    g = [outcome("g", 0, calls=4, invalid=1, missed=2), outcome("g", 1, missed=3)]
    assert tool_call_validity(g) == pytest.approx(100 / 3)
    # a model that answers in prose only has a validity of 0, not "no value"
    assert tool_call_validity([outcome("h", missed=3)]) == 0.0
    # nothing due (no turn at all, or only infra-broken trials) -> no value
    assert tool_call_validity([outcome("h")]) is None
    assert tool_call_validity([outcome("h", infra=True, rounds=0, missed=2)]) is None
    with pytest.raises(ValueError, match="missed_calls"):
        outcome("h", missed=-1)


def test_tool_use_fields_are_consistent():
    with pytest.raises(ValueError, match="finish_calls"):
        outcome("a", calls=1, finishes=2)
    with pytest.raises(ValueError, match="valid first call"):
        outcome("a", calls=0, first_call=True)


def test_a_failed_task_alone():
    failed = [outcome("b", total=2, met=1, completed=False, rounds=3)]
    assert ftfc(failed) == pytest.approx(50.0)
    assert success_rate(failed) == 0.0
    assert remaining_chances(failed) is None  # no success to measure
    assert agencybench_average(ftfc(failed), success_rate(failed), remaining_chances(failed)) == pytest.approx(50 / 3)


def test_only_infra_errors_leave_nothing_to_score():
    broken = [outcome("a", infra=True, rounds=0), outcome("b", infra=True, rounds=0)]
    assert ftfc(broken) is None and success_rate(broken) is None and remaining_chances(broken) is None
    assert agencybench_average(None, None, None) is None
    assert tool_call_validity(broken) is None and mean_steps(broken) is None
    assert infra_error_rate(broken) == 100.0
    assert infra_error_rate([]) is None


def test_remaining_chances_with_one_round():
    # R = 1: no feedback round exists, so every success is a first-round success and scores 100
    assert remaining_chances([outcome("a", completed=True, met=2, rounds=1, max_rounds=1)]) == 100.0
    # R = 5: solved in round 5 leaves 0 of 4 feedback rounds, in round 2 leaves 3 of 4 -> mean(0, 0.75) = 37.5
    five = [outcome("a", completed=True, rounds=5, max_rounds=5), outcome("b", completed=True, rounds=2, max_rounds=5)]
    assert remaining_chances(five) == pytest.approx(37.5)


def test_trials_are_averaged_within_a_task_first():
    # task a: two trials (FTFC 1/2 and 2/2 -> 0.75), task b: one trial (0) -> (0.75 + 0) / 2 = 37.5;
    # pooling episodes instead would give (0.5 + 1 + 0) / 3 = 50
    runs = [outcome("a", 0, met=1), outcome("a", 1, met=2), outcome("b", 0, met=0)]
    assert ftfc(runs) == pytest.approx(37.5)


# k = 4 scored trials per task; c = successes:
#   x: c=2, y: c=3, w: c=0, z: c=4; x also has a fifth trial that hit an infra error (ignored, so n stays 4).
K_TRIALS = (
    [outcome("x", t, completed=t < 2, rounds=1 if t < 2 else 3) for t in range(4)]
    + [outcome("x", 4, infra=True, rounds=0)]
    + [outcome("y", t, completed=t != 1, rounds=2 if t != 1 else 3) for t in range(4)]
    + [outcome("w", t) for t in range(4)]
    + [outcome("z", t, completed=True, rounds=1) for t in range(4)]
)


def test_pass_at_k_and_pass_hat_k_by_hand():
    # pass@1 = c/n per task: 2/4, 3/4, 0/4, 4/4 -> (0.5 + 0.75 + 0 + 1) / 4 = 0.5625
    assert pass_at_k(K_TRIALS, 1) == pytest.approx(56.25)
    # pass@4 = 1 - C(n-c,4)/C(4,4): x 1 - C(2,4)=1, y 1 - C(1,4)=1, w 1 - C(4,4)=0, z 1 -> 3/4
    assert pass_at_k(K_TRIALS, 4) == pytest.approx(75.0)
    # pass@2 = 1 - C(n-c,2)/C(4,2): x 1 - 1/6 = 5/6, y 1 - 0 = 1, w 1 - 6/6 = 0, z 1 -> (5/6 + 2) / 4 = 0.7083
    assert pass_at_k(K_TRIALS, 2) == pytest.approx(100 * (5 / 6 + 2) / 4)
    # pass^1 equals pass@1
    assert pass_hat_k(K_TRIALS, 1) == pytest.approx(56.25)
    # pass^2 = C(c,2)/C(4,2): x 1/6, y 3/6, w 0, z 6/6 -> (10/6) / 4 = 0.4167
    assert pass_hat_k(K_TRIALS, 2) == pytest.approx(100 * 10 / 24)
    # pass^4 = C(c,4)/C(4,4): only z (c=4) -> 1/4
    assert pass_hat_k(K_TRIALS, 4) == pytest.approx(25.0)
    assert tasks_with_k_trials(K_TRIALS, 4) == 4 and tasks_with_k_trials(K_TRIALS, 5) == 0
    assert pass_at_k(K_TRIALS, 5) is None  # no task has 5 scored trials


def test_per_task_estimators():
    assert pass_at_k_estimate(4, 2, 2) == pytest.approx(5 / 6)
    assert pass_hat_k_estimate(4, 3, 2) == pytest.approx(0.5)
    assert pass_at_k_estimate(10, 0, 3) == 0.0 and pass_at_k_estimate(10, 8, 3) == 1.0  # n-c < k: always hit
    # pass@k with n=10, c=3, k=1 is the plain success share
    assert pass_at_k_estimate(10, 3, 1) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="at least k trials"):
        pass_at_k_estimate(3, 1, 4)
    with pytest.raises(ValueError):
        pass_hat_k_estimate(3, 4, 1)


def test_tasks_with_fewer_than_k_trials_are_left_out_of_pass_k():
    # v has 3 scored trials: out of pass@4, which then averages only z (1.0)
    runs = [outcome("z", t, completed=True, rounds=1) for t in range(4)] + [outcome("v", t) for t in range(3)]
    assert pass_at_k(runs, 4) == 100.0 and tasks_with_k_trials(runs, 4) == 1
    assert pass_at_k(runs, 1) == pytest.approx(50.0)  # (1 + 0) / 2


def test_summarize_per_model_and_category():
    other = [outcome("a", model="tuned", total=3, met=3, completed=True, rounds=1, calls=2, steps=2)]
    summary = summarize(MIXED + other, k=1)
    assert summary["k"] == 1 and list(summary["models"]) == ["base", "tuned"]
    base = summary["models"]["base"]
    overall = base["overall"]
    assert overall["episodes"] == 4 and overall["scored_episodes"] == 3 and overall["infra_errors"] == 1
    assert overall["tasks"] == 3 and overall["R"] == 3
    assert overall["sr_at_r"] == pytest.approx(200 / 3) and overall["rc_at_r"] == pytest.approx(75.0)
    assert overall["agencybench_average"] == pytest.approx(65.74, abs=0.01)
    # k=1: pass@1 = pass^1 = SR here (one scored trial per task)
    assert overall["pass_at_k"] == pytest.approx(200 / 3) and overall["pass_hat_k"] == pytest.approx(200 / 3)
    assert overall["infra_error_rate"] == pytest.approx(25.0) and overall["tool_call_validity"] == pytest.approx(85.0)
    assert list(base["categories"]) == ["algorithm", "research"]
    algo, research = base["categories"]["algorithm"], base["categories"]["research"]
    # algorithm: a and b -> FTFC (2/3 + 0) / 2 = 33.33, SR 50, RC 50 (a only), average 44.44
    assert algo["ftfc"] == pytest.approx(100 / 3) and algo["sr_at_r"] == 50.0 and algo["rc_at_r"] == 50.0
    assert algo["agencybench_average"] == pytest.approx((100 / 3 + 50 + 50) / 3)
    # research: c's one scored trial solved everything in round 1; its infra error is half the episodes
    assert research["ftfc"] == 100.0 and research["rc_at_r"] == 100.0 and research["infra_error_rate"] == 50.0
    tuned = summary["models"]["tuned"]["overall"]
    assert tuned["agencybench_average"] == 100.0 and tuned["tool_call_validity"] == 100.0


def test_summarize_with_k_trials():
    overall = summarize(K_TRIALS, k=4)["models"]["base"]["overall"]
    assert overall["pass_at_k"] == pytest.approx(75.0) and overall["pass_hat_k"] == pytest.approx(25.0)
    # SR@3 per task: 0.5, 0.75, 0, 1 -> 56.25; RC@3 over the 9 successes: x 2 x 1.0, y 3 x 0.5, z 4 x 1.0 -> 7.5/9
    assert overall["sr_at_r"] == pytest.approx(56.25)
    assert overall["rc_at_r"] == pytest.approx(100 * 7.5 / 9)
    assert overall["tool_call_validity"] is None  # no tool calls recorded in these outcomes


def test_summarize_refuses_bad_input():
    with pytest.raises(ValueError, match="occurs twice"):
        summarize([outcome("a"), outcome("a")], k=1)
    with pytest.raises(ValueError, match="mix max_rounds"):
        summarize([outcome("a", max_rounds=3), outcome("b", max_rounds=5, rounds=1)], k=1)
    with pytest.raises(ValueError, match="k must be"):
        summarize([outcome("a")], k=0)
    assert summarize([], k=2) == {"k": 2, "models": {}}


def test_outcome_validation():
    with pytest.raises(ValueError, match="subtasks_met_first_round"):
        outcome("a", total=2, met=3)
    with pytest.raises(ValueError, match="rounds_used"):
        outcome("a", rounds=4, max_rounds=3)
    with pytest.raises(ValueError, match="invalid_tool_calls"):
        outcome("a", calls=1, invalid=2)
    with pytest.raises(ValueError, match="at least one round"):
        outcome("a", completed=True, rounds=0)


# Requirements and queries as the units (AgencyBench's definitions, R = 3):
#   task p: 3 queries with 4, 5 and 3 requirements (12). First responses meet 3 of query 1's 4 and 5 of query
#     2's 5; query 1 completed in round 2, query 2 in round 1, query 3 failed after 3 rounds:
#     FTFC (3 + 5 + 0) / 12, SR 2/3, RC mean((3-2)/2, (3-1)/2) = mean(0.5, 1) = 0.75.
#   task q: 2 queries with 2 and 2 requirements. Query 1 failed all R rounds, 1 of 2 met at first; query 2 is
#     never reached, its 2 requirements count as unmet: FTFC 1/4, SR 0/2, no RC value.
UNITS = [trial("p", 12, 8, [2, 1]), trial("q", 4, 1, [], queries=2)]


def test_ftfc_counts_requirements_and_unreached_queries_as_unmet():
    # per task (8/12 + 1/4) / 2 = (0.6667 + 0.25) / 2 = 0.4583; pooled 9 / 16 = 0.5625
    assert ftfc(UNITS) == pytest.approx(100 * (8 / 12 + 1 / 4) / 2)
    assert ftfc(UNITS) == pytest.approx(45.83, abs=0.01)
    assert ftfc_pooled(UNITS) == pytest.approx(56.25)


def test_sr_and_rc_are_per_query():
    # SR: p 2/3, q 0/2 -> (0.6667 + 0) / 2 = 33.33; pooled 2 / 5 = 40
    assert success_rate(UNITS) == pytest.approx(100 / 3)
    assert success_rate_pooled(UNITS) == pytest.approx(40.0)
    # RC: only p completed queries: 0.75 -> 75 (q has no value, it is left out, not a 0); pooled the same
    assert remaining_chances(UNITS) == pytest.approx(75.0)
    assert remaining_chances_pooled(UNITS) == pytest.approx(75.0)
    # average = (45.83 + 33.33 + 75) / 3 = 51.39
    assert agencybench_average(ftfc(UNITS), success_rate(UNITS), remaining_chances(UNITS)) == pytest.approx(
        51.39, abs=0.01)


def test_rc_with_one_round_and_per_task_first():
    # R = 1: every completed query was met by its first response -> 100
    assert remaining_chances([trial("a", 3, 3, [1, 1, 1], max_rounds=1)]) == 100.0
    # task a, two trials: RC 1.0 (round 1) and 0.0 (round 3) -> 0.5; task b: 0.5 (round 2) -> (0.5 + 0.5) / 2
    # = 50; pooled over the 3 completed queries: (1 + 0 + 0.5) / 3 = 50 too, but with a third trial of a at
    # round 1 the task mean is (1 + 0 + 1) / 3 = 0.667 -> (0.667 + 0.5) / 2 = 58.33 and pooled (1+0+1+0.5)/4 = 62.5
    runs = [trial("a", 1, 1, [1], queries=1), trial("a", 1, 0, [3], queries=1, trial=1),
            trial("b", 1, 0, [2], queries=1), trial("a", 1, 1, [1], queries=1, trial=2)]
    assert remaining_chances(runs) == pytest.approx(100 * (2 / 3 + 0.5) / 2)
    assert remaining_chances_pooled(runs) == pytest.approx(62.5)


def test_infra_errors_are_out_of_requirement_scores_and_counts_are_reported():
    broken = trial("p", 12, 0, [], infra=True, trial=1)
    assert ftfc(UNITS + [broken]) == ftfc(UNITS) and ftfc_pooled(UNITS + [broken]) == ftfc_pooled(UNITS)
    block = summarize(UNITS + [broken], k=1)["models"]["base"]["overall"]
    assert block["queries"] == 5 and block["requirements"] == 16 and block["infra_errors"] == 1
    assert block["ftfc_pooled"] == pytest.approx(56.25) and block["sr_at_r_pooled"] == pytest.approx(40.0)


def test_requirement_fields_are_validated():
    with pytest.raises(ValueError, match="requirements_total"):
        trial("a", 2, 0, [], queries=3)  # fewer requirements than queries
    with pytest.raises(ValueError, match="requirements_met_first_round"):
        trial("a", 3, 4, [])
    with pytest.raises(ValueError, match="query_rounds"):
        EpisodeOutcome("a", "base", 0, "algorithm", 1, 0, False, 3, 3, requirements_total=1, query_rounds=(0,))
