"""Sample-efficiency sweeps: the report's statistics, the plan, and a two-point sweep end to end as queued DVC
experiments of the real curate -> sft -> eval stages on a tiny random model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.agent.sandbox.bwrap import BwrapSandbox
from pipelines.core.errors import UserError
from pipelines.core.params import parse_params
from pipelines.tools.sweep.measures import DEFAULT_MEASURES, Measure, parse_measures, record_measures
from pipelines.tools.sweep.plan import cap_sizes, hydra, overrides, parse_ints, parse_subsets, plan
from pipelines.tools.sweep import queue as sweep_queue
from pipelines.tools.sweep.plots import Panel, plot
from pipelines.tools.sweep.report import measure_sections, panels, render_report
from pipelines.tools.sweep.results import point_rows
from pipelines.tools.sweep.stats import Cell, base_cell, build_cells, compare, paired
from tests.conftest import REPO, run_module
from tests.curation.test_funnel import record, text

BIN = Path(sys.executable).parent
GIT = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]


# ------------------------------------------------------------------------------------ statistics
def test_a_difference_within_the_seed_spread_is_not_significant():
    small = Cell("all", 4, [10.0, 30.0], [0, 1])  # mean 20, sd 14.1
    large = Cell("all", 8, [25.0, 35.0], [0, 1])  # mean 30, sd 7.1
    step = compare(large, small)
    assert step.delta == pytest.approx(10.0) and step.spread == pytest.approx(14.142, abs=1e-3)
    assert step.significant is False and step.label == "no significant difference (within seed spread)"

    far = Cell("all", 16, [60.0, 62.0], [0, 1])
    jump = compare(far, large)
    assert jump.delta == pytest.approx(31.0) and jump.significant is True
    assert jump.label == "yes (beyond seed spread)"
    down = compare(small, far)  # the sign does not matter, the size of the difference does
    assert down.delta == pytest.approx(-41.0) and down.significant is True


def test_against_a_fixed_baseline_only_the_cells_own_spread_counts():
    cell = Cell("replay", 4, [40.0, 44.0], [0, 1])  # sd 2.83
    assert compare(cell, None, 40.0).significant is False  # +2 <= 2.83
    assert compare(cell, None, 30.0).significant is True
    same = Cell("replay", 8, [0.0, 0.0], [0, 1])
    assert compare(same, None, 0.0).significant is False  # no difference is never significant


def test_one_seed_claims_nothing_and_missing_values_are_na():
    one = Cell("all", 4, [50.0], [0])
    other = Cell("all", 8, [90.0], [0])
    assert one.spread is None
    result = compare(other, one)
    assert result.delta == pytest.approx(40.0) and result.significant is None
    assert result.label == "not assessed (one seed)"
    assert compare(Cell("all", 4, [], []), one).label == "n/a"
    assert compare(one, None, None).delta is None


def test_cells_group_points_by_subset_and_size():
    rows = [{"teachers": "all", "size": 8, "seed": 0, "score": 10.0, "kept": 8},
            {"teachers": "all", "size": 4, "seed": 1, "score": 5.0, "kept": 4},
            {"teachers": "all", "size": 8, "seed": 1, "score": 30.0, "kept": 8},
            {"teachers": "replay", "size": 4, "seed": 0, "score": None},  # failed: left out
            {"teachers": "all", "size": 4, "seed": 0, "score": 7.0, "kept": 4}]
    cells = build_cells(rows)
    assert [(c.teachers, c.size, c.values) for c in cells] == [("all", 4, [5.0, 7.0]), ("all", 8, [10.0, 30.0])]
    assert cells[1].mean == pytest.approx(20.0) and cells[1].spread == pytest.approx(14.142, abs=1e-3)
    assert cells[0].intervals == [None, None] and cells[0].paired == [None, None]  # rows without intervals


def pair(delta: float, lo: float, hi: float) -> dict:
    return {"delta": delta, "interval": [lo, hi], "significant": lo > 0, "tasks": 5}


def test_against_the_untuned_model_the_paired_interval_decides_seed_by_seed():
    def cell(*found):
        return Cell("all", 4, [20.0] * len(found), list(range(len(found))), paired=list(found))

    assert paired(cell(pair(5.0, 1.0, 9.0))).label == "above zero"
    assert paired(cell(pair(5.0, 1.0, 9.0))).significant is True
    assert paired(cell(pair(3.0, -1.0, 7.0))).label == "no significant difference"
    assert paired(cell(pair(3.0, 0.0, 7.0))).label == "no significant difference"  # reaching zero is not above
    assert paired(cell(pair(-6.0, -9.0, -2.0))).label == "below zero"
    assert paired(cell(pair(-6.0, -9.0, -2.0))).significant is False
    both = paired(cell(pair(5.0, 1.0, 9.0), pair(4.0, 0.5, 8.0)))
    assert both.label == "above zero (all 2 seeds)" and both.significant is True
    mixed = paired(cell(pair(5.0, 1.0, 9.0), pair(2.0, -2.0, 6.0)))  # one seed reaching zero: no claim
    assert mixed.label == "no significant difference (above zero in 1 of 2 seeds)" and mixed.significant is False
    partial = paired(cell(pair(5.0, 1.0, 9.0), None))  # the untuned model evaluated with one seed only
    assert partial.label == "above zero (1 of 2 seeds paired)"
    assert paired(cell(None)).label == "n/a (no paired interval)" and paired(cell(None)).significant is None
    no_interval = paired(cell({"delta": 0.0, "interval": None, "significant": None, "tasks": 0}))
    assert no_interval.label == "n/a (no paired interval)" and no_interval.deltas == {0: 0.0}


# ------------------------------------------------------------------------------------ the results
def exp_data(eval_json: dict | None, state: str | None = None) -> dict:
    """An experiment as ``dvc exp show --json`` lists it: its params and metrics files' data."""
    models = [{"name": "base", "model": "embedded"}, {"name": "tuned", "model": "embedded", "adapter": "models/sft"}]
    metrics = {"metrics/curate.json": {"data": {"kept": 4}}, "metrics/sft.json": {"data": {"final_loss": 1.25}}}
    if eval_json is not None:
        metrics["metrics/eval.json"] = {"data": eval_json}
    return {"params": {"params.yaml": {"data": {"eval": {"models": models}}}}, "metrics": metrics, "state": state}


def test_rows_read_each_experiments_eval_metrics():
    eval_json = {"k": 2, "baseline": "base", "headline": {"base": {"sr_at_r": 10.0}, "tuned": {"sr_at_r": 25.0}},
                 "suites": {"humaneval": {}, "builtin": {}}, "tasks": 3, "trials": 12, "R": 2}
    points = [{"name": n, "teachers": "all", "size": 4, "seed": 0} for n in ("done", "running", "unknown")]
    # dvc exp show gives a running experiment its parent commit's files: they are not its results
    exps = {"done": exp_data(eval_json), "running": exp_data(eval_json, "running")}
    done, running, unknown = point_rows({"main_metric": "sr_at_r", "points": points}, exps)
    assert (done["status"], done["score"], done["tuned"], done["base_name"], done["base_score"]) == \
        ("Success", 25.0, "tuned", "base", 10.0)
    assert (done["tasks"], done["k"], done["rounds"], done["kept"]) == (3, 2, 2, 4)
    assert done["suites"] == ["builtin", "humaneval"]
    assert running["status"] == "Running" and running.get("score") is None and running.get("kept") is None
    assert unknown["status"] == "no result yet" and "score" not in unknown
    exps["done"] = exp_data({"k": "two"})
    with pytest.raises(UserError, match="experiment done: metrics/eval.json field k: Input should be a valid integer"):
        point_rows({"main_metric": "sr_at_r", "points": points}, exps)


def eval_with_intervals(tuned: float, span: list[float], delta: float | None = None,
                        paired_span: list[float] | None = None, base: float = 10.0) -> dict:
    """A ``metrics/eval.json`` as the eval writes it now: headline scores with 95% intervals and, when
    ``delta`` is given, the untuned baseline and the paired comparison against it."""
    data = {"k": 2, "main_metric": "sr_at_r", "tasks": 5, "trials": 20, "R": 3, "suites": {"builtin": {}},
            "confidence": 0.95, "bootstrap_resamples": 1000}
    if delta is None:
        return {**data, "baseline": "tuned", "headline": {"tuned": {"sr_at_r": tuned}},
                "intervals": {"tuned": {"sr_at_r": span}}}
    return {**data, "baseline": "base", "headline": {"base": {"sr_at_r": base}, "tuned": {"sr_at_r": tuned}},
            "intervals": {"base": {"sr_at_r": [2.0, 18.0]}, "tuned": {"sr_at_r": span}},
            "comparisons": {"tuned": {"sr_at_r": {"delta": delta, "interval": paired_span,
                                                   "significant": paired_span[0] > 0 if paired_span else None,
                                                   "tasks": 5}}}}


def sweep_record(points: list[tuple[str, str, int, int]]) -> dict:
    return {"id": "sweep-t", "main_metric": "sr_at_r", "sizes": sorted({p[2] for p in points}),
            "seeds": sorted({p[3] for p in points}), "subsets": sorted({p[1] for p in points}), "available": {},
            "baseline_rev": "0123456789abcdef",
            "points": [{"name": n, "teachers": t, "size": z, "seed": d} for n, t, z, d in points]}


def test_rows_read_the_eval_intervals_and_the_paired_comparison():
    points = [{"name": n, "teachers": "all", "size": 4, "seed": 0} for n in ("first", "later", "old")]
    exps = {"first": exp_data(eval_with_intervals(25.0, [12.5, 37.5], 15.0, [5.0, 25.0])),
            "later": exp_data(eval_with_intervals(30.0, [15.0, 45.0])),  # no untuned model evaluated here
            "old": exp_data({"k": 2, "baseline": "base", "headline": {"base": {"sr_at_r": 10.0},
                                                                       "tuned": {"sr_at_r": 25.0}}})}
    first, later, old = point_rows({"main_metric": "sr_at_r", "points": points}, exps)
    assert first["interval"] == [12.5, 37.5] and first["base_interval"] == [2.0, 18.0]
    assert first["paired"] == {"delta": 15.0, "interval": [5.0, 25.0], "significant": True, "tasks": 5}
    assert (first["confidence"], first["resamples"]) == (0.95, 1000)
    assert later["interval"] == [15.0, 45.0] and later["paired"] is None and later["base_name"] is None
    assert (old["score"], old["interval"], old["paired"], old["confidence"]) == (25.0, None, None, None)


def test_the_report_shows_intervals_and_the_paired_verdict(tmp_path):
    record = sweep_record([("p-all-n4-s0", "all", 4, 0), ("p-all-n8-s0", "all", 8, 0),
                           ("p-rep-n4-s0", "replay", 4, 0), ("p-rep-n4-s1", "replay", 4, 1)])
    exps = {"p-all-n4-s0": exp_data(eval_with_intervals(25.0, [12.5, 37.5], 15.0, [5.0, 25.0])),
            "p-all-n8-s0": exp_data(eval_with_intervals(12.0, [0.0, 24.0], 2.0, [-4.0, 8.0])),
            "p-rep-n4-s0": exp_data(eval_with_intervals(40.0, [30.0, 50.0], 30.0, [20.0, 40.0])),
            "p-rep-n4-s1": exp_data(eval_with_intervals(44.0, [33.0, 55.0]))}
    rows = point_rows(record, exps)
    cells = build_cells(rows)
    text = render_report(record, rows, cells, 10.0)
    assert "In brackets: the eval's 95% intervals, a bootstrap over tasks (and over trials when k > 1) with " \
           "1000 resamples" in text
    assert "| all | 4 | 1 | 25.0 [12.5, 37.5] | n/a | s0: 25.0 [12.5, 37.5] | - | - | +15.0 [+5.0, +25.0] | " \
           "above zero |" in text
    # the paired interval reaches zero: no significant difference; against size 4, one seed claims nothing
    assert "| all | 8 (kept 4) | 1 | 12.0 [0.0, 24.0] | n/a | s0: 12.0 [0.0, 24.0] | -13.0 | not assessed (one seed) | " \
           "+2.0 [-4.0, +8.0] | no significant difference |" in text
    # two seeds: the per-seed intervals; only seed 0 evaluated the untuned model
    assert "| replay | 4 | 2 | 42.0 | 2.8 | s0: 40.0 [30.0, 50.0], s1: 44.0 [33.0, 55.0] | - | - | " \
           "+32.0 (s0: +30.0 [+20.0, +40.0]) | above zero (1 of 2 seeds paired) |" in text
    assert "with `--baseline once` only the first experiment evaluates it (`--baseline every`, the default: all " \
           "do)" in text
    assert "| p-all-n8-s0 | all | 8 | 0 | Success | 4 | 12.0 [0.0, 24.0] | +2.0 [-4.0, +8.0] | 1.250 |" in text
    assert "| p-rep-n4-s1 | replay | 4 | 1 | Success | 4 | 44.0 [33.0, 55.0] | n/a |" in text
    plot(panels(record, rows, []), tmp_path / "sweep.png", "t")  # the intervals drawn as error bars
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_seeds_with_and_without_significance_and_an_old_eval_json_report():
    record = sweep_record([("a-s0", "all", 4, 0), ("a-s1", "all", 4, 1), ("b-s0", "all", 8, 0), ("b-s1", "all", 8, 1)])
    exps = {"a-s0": exp_data(eval_with_intervals(25.0, [12.5, 37.5], 15.0, [5.0, 25.0])),
            "a-s1": exp_data(eval_with_intervals(15.0, [5.0, 25.0], 5.0, [-3.0, 13.0])),
            "b-s0": exp_data({"k": 2, "baseline": "base", "headline": {"base": {"sr_at_r": 10.0},
                                                                        "tuned": {"sr_at_r": 10.0}}}),
            "b-s1": exp_data({"k": 2, "baseline": "tuned", "headline": {"tuned": {"sr_at_r": 50.0}}})}
    rows = point_rows(record, exps)
    text = render_report(record, rows, build_cells(rows), 10.0)
    assert "s0: 25.0 [12.5, 37.5], s1: 15.0 [5.0, 25.0] | - | - | " \
           "+10.0 (s0: +15.0 [+5.0, +25.0], s1: +5.0 [-3.0, +13.0]) | " \
           "no significant difference (above zero in 1 of 2 seeds) |" in text
    # eval.json files from before intervals: the scores report, the intervals are n/a
    assert "| all | 8 (kept 4) | 2 | 30.0 | 28.3 | s0: 10.0 [n/a], s1: 50.0 [n/a] | +10.0 | " \
           "no significant difference (within seed spread) | +20.0 | n/a (no paired interval) |" in text
    assert "| b-s0 | all | 8 | 0 | Success | 4 | 10.0 [n/a] | n/a |" in text
    assert "with n/a resamples" not in text  # the newer experiments say how many


# ------------------------------------------------------------------------------------ the measures
def test_measures_are_metrics_or_suite_metrics_and_bad_names_are_named():
    assert parse_measures(DEFAULT_MEASURES) == [Measure("tool_call_validity"), Measure("first_call_validity"),
                                                Measure("finish_rate"), Measure("ftfc", "easy")]
    assert [m.key for m in parse_measures(" easy:ftfc, finish_rate,easy:ftfc,")] == ["easy:ftfc", "finish_rate"]
    assert Measure("ftfc", "easy").label(3, 1) == "FTFC (easy suite)" and Measure("sr_at_r").label(3, 1) == "SR@3"
    assert Measure("ftfc", "easy").slug == "easy.ftfc"  # MLflow metric names take no ':'
    with pytest.raises(UserError, match="--measures: 'easy:accuracy': unknown metric 'accuracy'; known: ftfc, "):
        parse_measures("finish_rate,easy:accuracy")
    with pytest.raises(UserError, match="unknown metric 'mean_steps'"):  # not a rate: no paired comparison
        parse_measures("mean_steps")
    for bad in (":ftfc", "a:b:ftfc"):
        with pytest.raises(UserError, match=f"'{bad}': expected 'metric' or 'suite:metric'"):
            parse_measures(bad)
    with pytest.raises(UserError, match="a suite name is letters"):
        parse_measures("my suite:ftfc")
    with pytest.raises(UserError, match="--measures: no measure given"):
        parse_measures(" , ")
    assert record_measures({}) == parse_measures(DEFAULT_MEASURES)  # a record from before measures
    assert record_measures({"measures": ["sr_at_r"]}) == [Measure("sr_at_r")]


def block(**scores: float) -> dict:
    return {"episodes": 4, **scores}


def eval_with_measures(seed: int, easy_tuned: float, easy_pair: list[float] | None, base_easy: float = 20.0,
                       finish: float = 60.0, finish_pair: list[float] | None = None, baseline: bool = True) -> dict:
    """A ``metrics/eval.json`` with overall finish_rate and the easy suite's FTFC, paired per suite."""
    data = {"k": 1, "main_metric": "sr_at_r", "tasks": 12, "trials": 24, "R": 3, "confidence": 0.95,
            "bootstrap_resamples": 1000}
    tuned = {"sr_at_r": 10.0 + seed, "finish_rate": finish}
    suites = {"easy": {"tuned": block(ftfc=easy_tuned)}, "builtin": {"tuned": block(ftfc=0.0)}}
    if not baseline:
        return {**data, "baseline": "tuned", "headline": {"tuned": tuned}, "suites": suites,
                "intervals": {"tuned": {"sr_at_r": [0.0, 30.0], "finish_rate": [finish - 10, finish + 10]}}}
    suites["easy"]["base"] = block(ftfc=base_easy)
    fp = finish_pair or [5.0, 35.0]
    return {**data, "baseline": "base", "headline": {"base": {"sr_at_r": 5.0, "finish_rate": 40.0}, "tuned": tuned},
            "intervals": {"base": {"sr_at_r": [0.0, 15.0], "finish_rate": [30.0, 50.0]},
                          "tuned": {"sr_at_r": [0.0, 30.0], "finish_rate": [finish - 10, finish + 10]}},
            "comparisons": {"tuned": {"sr_at_r": pair(5.0, -5.0, 15.0),
                                      "finish_rate": pair(finish - 40.0, *fp)}},
            "suites": suites,
            "suite_comparisons": {"easy": {"tuned": {"ftfc": pair(easy_tuned - base_easy, *easy_pair)}}
                                  if easy_pair else {}}}


MEASURES = parse_measures("finish_rate,easy:ftfc,hard:ftfc")


def test_a_suite_measure_reads_the_suite_blocks_and_their_paired_comparison():
    record = {**sweep_record([("a", "all", 4, 0), ("b", "all", 4, 1)]), "measures": [m.key for m in MEASURES]}
    exps = {"a": exp_data(eval_with_measures(0, 50.0, [10.0, 50.0])),
            "b": exp_data(eval_with_measures(1, 45.0, None, baseline=False))}
    a, b = point_rows(record, exps)  # the measures the record names
    assert a["measures"]["easy:ftfc"] == {"score": 50.0, "interval": None, "base_score": 20.0, "base_interval": None,
                                          "paired": pair(30.0, 10.0, 50.0), "evaluated": True}
    assert a["measures"]["finish_rate"] == {"score": 60.0, "interval": [50.0, 70.0], "base_score": 40.0,
                                            "base_interval": [30.0, 50.0], "paired": pair(20.0, 5.0, 35.0),
                                            "evaluated": True}
    assert a["measures"]["hard:ftfc"]["evaluated"] is False and a["measures"]["hard:ftfc"]["score"] is None
    # no untuned model in this experiment: the tuned score, no base and no paired comparison
    assert (b["measures"]["easy:ftfc"]["score"], b["measures"]["easy:ftfc"]["base_score"],
            b["measures"]["easy:ftfc"]["paired"]) == (45.0, None, None)
    [cell] = build_cells([a, b], "easy:ftfc")
    assert (cell.values, cell.seeds) == ([50.0, 45.0], [0, 1])
    base = base_cell([a, b], "easy:ftfc")
    assert (base.size, base.values, base.seeds) == (0, [20.0], [0])


def test_measure_tables_have_the_untuned_row_and_judge_every_seed():
    points = [(f"n{n}-s{s}", "all", n, s) for n in (4, 8) for s in (0, 1, 2)]
    record = {**sweep_record(points), "measures": [m.key for m in MEASURES]}
    easy = {4: [[-5.0, 30.0], [2.0, 40.0], [5.0, 45.0]],  # one seed's interval reaches below zero
            8: [[1.0, 40.0], [2.0, 50.0], [3.0, 55.0]]}  # every seed above zero
    finish = {4: [[0.0, 20.0], [5.0, 30.0], [5.0, 30.0]],  # one seed's interval reaches zero exactly
              8: [[5.0, 30.0], [6.0, 30.0], [7.0, 30.0]]}
    exps = {f"n{n}-s{s}": exp_data(eval_with_measures(s, 30.0 + n + s, easy[n][s], base_easy=20.0 + s,
                                                      finish=50.0 + n, finish_pair=finish[n][s]))
            for n in (4, 8) for s in (0, 1, 2)}
    rows = point_rows(record, exps)
    text = "\n".join(measure_sections(rows, MEASURES))
    # N = 0: the untuned model over the six experiments that evaluated it, each seed's value
    assert "| untuned | 0 | 6 experiments | 21.0 ± 0.9 | s0: 20.0 (2 experiments), s1: 21.0 (2 experiments), " \
           "s2: 22.0 (2 experiments) | - | (reference) | - |" in text
    assert "| untuned | 0 | 6 experiments | 40.0 ± 0.0 | s0: 40.0 (2 experiments)" in text  # finish_rate
    assert "| all | 4 | 3 | 35.0 ± 1.0 | s0: 34.0 [n/a], s1: 35.0 [n/a], s2: 36.0 [n/a] | +14.0 (s0: +14.0 " \
           "[-5.0, +30.0], s1: +14.0 [+2.0, +40.0], s2: +14.0 [+5.0, +45.0]) | no significant difference | " \
           "3 of 3 (2 above zero) |" in text
    assert "| all | 8 | 3 | 39.0 ± 1.0 | s0: 38.0 [n/a], s1: 39.0 [n/a], s2: 40.0 [n/a] | +18.0 (s0: +18.0 " \
           "[+1.0, +40.0], s1: +18.0 [+2.0, +50.0], s2: +18.0 [+3.0, +55.0]) | above zero | 3 of 3 (3 above zero) |" \
           in text
    assert "| all | 4 | 3 | 54.0 ± 0.0 | s0: 54.0 [44.0, 64.0]" in text
    assert "[+0.0, +20.0], s1: +14.0 [+5.0, +30.0], s2: +14.0 [+5.0, +30.0]) | no significant difference | " \
           "3 of 3 (2 above zero) |" in text  # an interval reaching zero is not above it
    assert "Reading: at N = 8, tuned − untuned +18.0 is **above zero** (3 of 3 seeds with a paired " \
           "interval, 3 above zero); above zero at N = 8." in text
    assert "No numbers: suite 'hard' was evaluated in no experiment (suites evaluated: builtin, easy); add it to " \
           "eval.suites to measure hard:ftfc." in text
    assert text.count("Reading:") == 2


def test_a_seed_without_the_untuned_model_is_counted_not_hidden():
    record = {**sweep_record([("a", "all", 4, 0), ("b", "all", 4, 1)]), "measures": ["easy:ftfc"]}
    exps = {"a": exp_data(eval_with_measures(0, 50.0, [10.0, 50.0])),
            "b": exp_data(eval_with_measures(1, 45.0, None, baseline=False))}
    text = "\n".join(measure_sections(point_rows(record, exps), [Measure("ftfc", "easy")]))
    assert "| above zero | 1 of 2 (1 above zero) |" in text
    assert "| untuned | 0 | 1 experiment | 20.0 [n/a] | s0: 20.0 [n/a] |" in text
    del exps["a"]  # `--baseline once` whose first experiment failed: no untuned value, no paired verdict
    text = "\n".join(measure_sections(point_rows(record, exps), [Measure("ftfc", "easy")]))
    assert "| untuned | 0 | 0 | n/a (no experiment has a value of the untuned model) |" in text
    assert "| all | 4 | 1 | 45.0 [n/a] | s1: 45.0 [n/a] | n/a | n/a | 0 of 1 |" in text
    assert "Reading: at N = 4, tuned − untuned n/a: no paired interval, no verdict." in text


def test_the_plot_has_a_panel_per_measure_on_the_0_100_scale(tmp_path):
    points = [(f"n{n}-s{s}", "all", n, s) for n in (4, 8) for s in (0, 1)]
    record = {**sweep_record(points), "measures": [m.key for m in MEASURES]}
    exps = {f"n{n}-s{s}": exp_data(eval_with_measures(s, 30.0 + n, [1.0, 60.0])) for n in (4, 8) for s in (0, 1)}
    rows = point_rows(record, exps)
    found = panels(record, rows, MEASURES + [Measure("sr_at_r")])  # the main metric is drawn once
    assert [p.title for p in found] == ["SR@3 (main metric)", "finish rate", "FTFC (easy suite)", "FTFC (hard suite)"]
    assert found[3].note.startswith("suite 'hard' was evaluated in no experiment") and not found[3].cells
    assert found[2].base.values == [20.0] * 4 and [c.size for c in found[2].cells] == [4, 8]
    fig = plot(found, tmp_path / "sweep.png", "t")
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) == 4
    for ax, panel in zip(fig.axes, found):
        assert ax.get_ylim() == (0.0, 100.0) and ax.get_title() == panel.title
        assert ax.get_ylabel().endswith("(%)")
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0\n(untuned)", "4", "8"]
    easy = fig.axes[2]
    [untuned] = [line for line in easy.lines if line.get_marker() == "s"]
    assert (list(untuned.get_xdata()), list(untuned.get_ydata())) == ([0], [20.0])  # the untuned model at N = 0
    [tuned] = [line for line in easy.lines if line.get_marker() == "o"]  # the tuned line at 4 and 8
    assert (list(tuned.get_xdata()), list(tuned.get_ydata())) == ([1, 2], [34.0, 38.0])
    single = plot([Panel("x", [])], tmp_path / "one.png", "t")  # nothing finished yet: still a figure
    assert len(single.axes) == 1 and single.axes[0].get_ylim() == (0.0, 100.0)


# ------------------------------------------------------------------------------------ the plan
def test_sizes_are_capped_at_what_is_eligible_and_empty_subsets_skipped():
    assert cap_sizes([4, 8, 16, 32, 78], 26) == ([4, 8, 16, 26], [32, 78])
    assert cap_sizes([4, 8], 0) == ([], [4, 8])
    subsets = parse_subsets("all,replay,embedded, replay+embedded")
    assert subsets == {"all": [], "replay": ["replay"], "embedded": ["embedded"],
                       "embedded+replay": ["embedded", "replay"]}
    points, notes = plan(subsets, {"all": 26, "replay": 26, "embedded": 0, "embedded+replay": 26}, [4, 32],
                         [0, 1], "sweep-x", baseline="once")
    assert "teachers embedded: no curate-eligible trajectories; skipped" in notes
    assert "teachers all: 26 curate-eligible trajectories; size 32 capped at 26" in notes
    assert [p.name for p in points[:4]] == ["sweep-x-all-n4-s0", "sweep-x-all-n4-s1", "sweep-x-replay-n4-s0",
                                            "sweep-x-replay-n4-s1"]
    assert points[-1].name == "sweep-x-embedded+replay-n26-s1".replace("+", "_")
    assert len(points) == 2 * 3 * 2 and {p.seed for p in points} == {0, 1}
    assert [p.with_baseline for p in points].count(True) == 1 and points[0].with_baseline
    with pytest.raises(UserError, match="names no teacher"):
        parse_subsets("all,+")


def test_every_experiment_evaluates_the_untuned_model_by_default_and_size_0_queues_nothing():
    sizes = parse_ints("8,0,4", "sizes")
    assert sizes == [0, 4, 8]
    points, notes = plan({"all": []}, {"all": 26}, sizes, [0, 1, 2], "s")
    assert [(p.size, p.seed) for p in points] == [(4, 0), (4, 1), (4, 2), (8, 0), (8, 1), (8, 2)]
    assert all(p.with_baseline for p in points)
    assert notes == ["size 0 is the untuned model: no experiment trains it; the report's N = 0 rows are the "
                     "untuned model as the experiments evaluated it"]
    with pytest.raises(UserError, match="--sizes '0': size 0 is the untuned model"):
        parse_ints("0", "sizes")
    with pytest.raises(UserError, match="--seeds '-1': expected one or more non-negative integers"):
        parse_ints("-1", "seeds")


def test_overrides_are_what_dvc_exp_run_is_given():
    params = parse_params({})
    points, _ = plan({"all": [], "replay": ["replay"]}, {"all": 9, "replay": 9}, [4], [3], "s", baseline="once")
    first, second = points
    assert overrides(first, {"all": [], "replay": ["replay"]}, params) == [
        "curate.target_size=4", "curate.seed=3", "sft.seed=3", "curate.teachers=[]",
        "eval.register_champion=false"]
    later = overrides(second, {"all": [], "replay": ["replay"]}, params)
    assert "curate.teachers=['replay']" in later and "curate.drop_teachers=[]" in later
    assert "eval.models=[{name:'tuned',model:'embedded',adapter:'models/sft'}]" in later  # the base once only
    assert hydra({"a": ["x'y", 1, None, True]}) == "{a:['x\\'y',1,null,true]}"


def test_curate_teachers_param_keeps_only_the_named_teachers(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from pipelines.curate import curate

    records = [record(f"r{i}", text(i), text(100 + i, 80), teacher="replay") for i in range(3)]
    records += [record(f"e{i}", text(10 + i), text(200 + i, 80), teacher="embedded") for i in range(2)]
    src = tmp_path / "episodes.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = {"decontam": {"builtin": False, "easy": False, "humaneval": False}, "target_size": 50}
    report = curate(parse_params({"curate": {**base, "teachers": ["embedded"]}}), tmp_path, [src], tmp_path / "o",
                    None, tokenizer=tok)
    assert report["kept_by_teacher"] == {"embedded": 2}
    assert {s["detail"] for s in report["samples"] if s["reason"] == "verified"} == {
        "teacher replay is not in curate.teachers"}
    with pytest.raises(UserError, match="teachers and drop_teachers both name replay"):
        parse_params({"curate": {"teachers": ["replay"], "drop_teachers": ["replay"]}})


# ------------------------------------------------------------------------------------ end to end
TAIL = ("curate", "sft", "eval_shard", "eval")  # eval_shard@0 and the merge
SANDBOX = "bwrap" if BwrapSandbox.available() else "none"


def tiny_params() -> dict:
    """The repo's params.yaml with the tail made small: a few LoRA steps, one builtin task, short episodes."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["llm"]["models"]["embedded"].update(device="cpu", max_context=2048,
                                                sampling={"max_tokens": 16, "temperature": 0.0, "top_p": 1.0,
                                                          "seed": 0})
    params["curate"]["decontam"].update(agencybench_dirs=[], humaneval=False)
    params["sft"].update(max_steps=2, save_steps=100, max_length=2048, lora={"r": 4, "alpha": 8, "dropout": 0.0,
                                                                             "target_modules": "all-linear"})
    params["eval"].update(suites=[{"name": "builtin", "limit": 1}], rounds=1, parallel=2, sandbox=SANDBOX,
                          limits={"max_steps": 2, "max_tokens": 20000, "max_seconds": 120, "max_format_errors": 1},
                          sampling={"max_tokens": 16, "temperature": 0.0, "top_p": 1.0, "seed": 0})
    return params


@pytest.fixture
def sweep_project(tmp_path, tiny_model_dir) -> Path:
    """A git + DVC project with the real curate/sft/eval stages; the model and the trajectories are tracked
    data (dvc add), so the experiments can only get them from the DVC cache."""
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copytree(REPO / "pipelines", root / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {s: stages[s] for s in TAIL}}, sort_keys=False))
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    shutil.copytree(tiny_model_dir, root / "models" / "base")
    shutil.copytree(REPO / "data" / "tasks", root / "data" / "tasks")  # the held-out tasks curate and eval read
    records = [record(f"r{i}", text(i), text(100 + i, 80), teacher="replay", category=c)
               for i, c in enumerate(["algorithm", "data_analysis", "algorithm", "data_analysis", "algorithm"])]
    records += [record(f"e{i}", text(10 + i), text(200 + i, 80), teacher="embedded", passed=False) for i in range(2)]
    (root / "data" / "trajectories").mkdir(parents=True)
    (root / "data" / "trajectories" / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=root, check=True)
    subprocess.run([str(BIN / "dvc"), "add", "-q", "models/base", "data/trajectories"], cwd=root, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-qm", "tiny sweep project"], cwd=root, check=True)
    return root


def sweep_env(root: Path) -> dict[str, str]:
    return {"PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]), "DVC_NO_ANALYTICS": "1",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com", "LIMI_PARENT_RUN_ID": ""}


@pytest.mark.slow
def test_two_point_sweep_end_to_end(sweep_project):
    root = sweep_project
    env = sweep_env(root)
    args = ("--sizes", "2,50", "--suites", "builtin", "--seeds", "0", "--teachers", "all,embedded")
    dry = run_module("pipelines.tools.sweep", *args, "--dry-run", root=root, env=env, timeout=300)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "teachers embedded: no curate-eligible trajectories; skipped" in dry.stderr
    assert "size 50 capped at 5" in dry.stderr
    assert dry.stdout.count("dvc exp run --queue --downstream") == 2 and "curate.target_size=5" in dry.stdout

    result = run_module("pipelines.tools.sweep", *args, root=root, env=env, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    [sweep_file] = (root / ".dvc" / "tmp" / "sweeps").glob("sweep-*.json")
    sweep = json.loads(sweep_file.read_text())
    names = [p["name"] for p in sweep["points"]]
    assert [(p["size"], p["seed"], p["teachers"]) for p in sweep["points"]] == [(2, 0, "all"), (5, 0, "all")]
    assert all(p["status"] == "Success" for p in sweep["points"])

    # dvc exp show lists the experiments with the sweep's params and their own metrics
    shown = json.loads(subprocess.run([str(BIN / "dvc"), "exp", "show", "--json"], cwd=root, capture_output=True,
                                      text=True, check=True, env={**os.environ, **env}).stdout)
    exps = {r["name"]: r["data"] for e in shown for x in e.get("experiments") or [] for r in x["revs"]}
    assert set(names) <= set(exps)
    for point in sweep["points"]:
        data = exps[point["name"]]
        p = data["params"]["params.yaml"]["data"]
        assert p["curate"]["target_size"] == point["size"] and p["sft"]["seed"] == 0
        assert p["eval"]["register_champion"] is False
        assert data["metrics"]["metrics/curate.json"]["data"]["kept"] == point["size"]
        assert data["metrics"]["metrics/sft.json"]["data"]["samples"] == point["size"]
    first, second = (exps[n]["metrics"]["metrics/eval.json"]["data"] for n in names)
    # --baseline every (the default): each experiment evaluates the untuned model, each seed is paired
    assert set(first["headline"]) == {"base", "tuned"} and set(second["headline"]) == {"base", "tuned"}
    # nothing before curate ran in the experiments: the workspace's trajectories are what curate read
    assert not (root / "data" / "sft").exists() and (root / "params.yaml").read_text() == yaml.safe_dump(
        tiny_params(), sort_keys=False)

    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    sweep_run = client.get_run(sweep["run_id"])
    assert sweep_run.info.status == "FINISHED" and sweep_run.data.tags["sweep.id"] == sweep["id"]
    assert {f.path for f in client.list_artifacts(sweep["run_id"])} == {"sweep.md", "sweep.png"}
    exp_id = sweep_run.info.experiment_id
    for point in sweep["points"]:
        run = client.get_run(point["run_id"])
        assert run.data.tags["mlflow.parentRunId"] == sweep["run_id"] and run.info.status == "FINISHED"
        assert run.data.params["sweep.size"] == str(point["size"]) and "eval.agencybench_average" in run.data.metrics
        stages = client.search_runs([exp_id], f"tags.mlflow.parentRunId = '{point['run_id']}'",
                                    run_view_type=ViewType.ALL)
        # eval runs as its one shard (tagged limi.shard) and the merge that writes the report
        assert sorted(s.info.run_name for s in stages) == ["curate", "eval", "eval", "sft"]
        assert sorted(s.data.tags.get("limi.shard", "-") for s in stages if s.info.run_name == "eval") == ["-", "0/1"]
        for stage in stages:
            assert stage.info.status == "FINISHED"
            assert stage.data.tags["sweep.id"] == sweep["id"] and stage.data.tags["dvc.experiment"] == point["name"]
            assert stage.data.tags["sweep.size"] == str(point["size"]) and stage.data.tags["sweep.seed"] == "0"
            assert stage.data.tags["sweep.teachers"] == "all"
        curate_run = next(s for s in stages if s.info.run_name == "curate")
        assert curate_run.data.params["target_size"] == str(point["size"])
    assert not client.search_runs([exp_id], "attributes.run_name = 'collect'")  # nothing recollected

    report = (root / "reports" / "sweep.md").read_text()
    assert f"# Sample-efficiency sweep `{sweep['id']}`" in report
    assert "Eval suite: builtin (first 1); 1 tasks, k = 1 trial(s) per task and model (1 trials per model" in report
    assert "teachers embedded: no curate-eligible trajectories; skipped" in report
    assert "| all | 2 | 1 |" in report and "| all | 5 | 1 |" in report and "not assessed (one seed)" in report
    assert sweep["measures"] == DEFAULT_MEASURES.split(",")
    assert "### tool-call validity (`tool_call_validity`)" in report and "| untuned | 0 | 2 experiments |" in report
    assert "No numbers: suite 'easy' was evaluated in no experiment (suites evaluated: builtin)" in report
    assert (root / "plots" / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = run_module("pipelines.tools.sweep", "report", root=root, env=env, timeout=300)
    assert again.returncode == 0 and "wrote" in again.stdout, again.stderr[-3000:]


def test_a_queue_left_without_a_worker_gets_a_new_one(monkeypatch):
    """The decision alone (DVC's status and worker count faked): a queued experiment, nothing running and no
    worker for the stall time -> one restart; a worker that answers, or an experiment running -> none."""
    states = [{"a": "Success", "b": "Queued"}] * 3 + [{"a": "Success", "b": "Running"}, {"a": "Success", "b": "Success"}]
    polls = iter(states)
    workers = iter([1, 0, 1])  # a worker answers (idle, about to take b); none (restart); the new one answers
    monkeypatch.setattr(sweep_queue, "queue_status", lambda root: next(polls))
    monkeypatch.setattr(sweep_queue, "queue_workers", lambda root: next(workers))
    restarts = []
    seen = sweep_queue.wait_for(Path("."), ["a", "b"], poll_s=0, restart=lambda: restarts.append(1), stall_s=0)
    assert seen == {"a": "Success", "b": "Success"} and restarts == [1]

    polls = iter([{"a": "Running", "b": "Queued"}, {"a": "Success", "b": "Success"}])
    monkeypatch.setattr(sweep_queue, "queue_workers", lambda root: pytest.fail("asked for workers while one runs"))
    assert sweep_queue.wait_for(Path("."), ["a", "b"], poll_s=0, restart=lambda: restarts.append(2), stall_s=0)
    assert restarts == [1]


@pytest.mark.slow
def test_a_sweep_queued_with_no_worker_is_run_by_a_restarted_one(sweep_project):
    """The state a dead DVC worker leaves (experiments queued, no worker), made with ``--no-wait``; waiting on
    it asks the real queue, finds no worker, starts one, and the experiment succeeds."""
    from pipelines.core.dvc import start_dvc
    from pipelines.tools.sweep.record import load_record

    root = sweep_project
    env = sweep_env(root)
    queued = run_module("pipelines.tools.sweep", "--sizes", "2", "--seeds", "0", "--suites", "builtin", "--no-wait",
                        root=root, env=env, timeout=300)
    assert queued.returncode == 0, queued.stderr[-3000:]
    sweep = load_record(root)
    names = [p["name"] for p in sweep["points"]]
    assert sweep_queue.queue_status(root) == {names[0]: "Queued"} and sweep_queue.queue_workers(root) == 0
    starts = []

    def restart():
        log = (root / "queue.log").open("a")
        starts.append(start_dvc(["queue", "start"], root, {**os.environ, **env,
                                                         "MLFLOW_TRACKING_URI": sweep["tracking_uri"]}, log))

    # stall_s: longer than a new worker takes to pick the experiment up, so one start is enough
    seen = sweep_queue.wait_for(root, names, poll_s=1, restart=restart, stall_s=20)
    assert seen == {names[0]: "Success"} and len(starts) == 1, (root / "queue.log").read_text()[-3000:]
    starts[0].wait(timeout=120)


def test_a_sweep_without_cached_trajectories_refuses_to_start(sweep_project):
    root = sweep_project
    shutil.rmtree(root / ".dvc" / "cache")
    result = run_module("pipelines.tools.sweep", "--sizes", "2", "--seeds", "0", root=root, env=sweep_env(root),
                        timeout=300)
    assert result.returncode == 2
    assert "data/trajectories (data/trajectories.dvc): the recorded version is not in the DVC cache" \
        in result.stderr


def test_the_sweep_evaluates_only_the_suites_it_names():
    from pipelines.core.params import parse_params
    from pipelines.tools.sweep.plan import Point, overrides

    params = parse_params({"eval": {"suites": [{"name": "builtin", "limit": 3}, {"name": "easy", "limit": 0}]}})
    point = Point("p", "all", 8, 0, True)
    sets = dict(s.split("=", 1) for s in overrides(point, {"all": []}, params, ["easy"]))
    assert sets["eval.suites"] == "[{name:'easy',limit:0}]"  # the entry as params.yaml has it, limit included
    assert "eval.suites" not in dict(s.split("=", 1) for s in overrides(point, {"all": []}, params))
    with pytest.raises(UserError, match="--suites: agencybench not in params.yaml eval.suites"):
        overrides(point, {"all": []}, params, ["agencybench"])


def test_the_sweep_sets_the_eval_rounds_it_is_given():
    from pipelines.core.params import parse_params
    from pipelines.tools.sweep.cli import main
    from pipelines.tools.sweep.plan import Point, overrides

    params = parse_params({})
    point = Point("p", "all", 8, 0, True)
    assert dict(s.split("=", 1) for s in overrides(point, {"all": []}, params, None, 1))["eval.rounds"] == "1"
    assert "eval.rounds" not in dict(s.split("=", 1) for s in overrides(point, {"all": []}, params))
    with pytest.raises(SystemExit):
        main(["run", "--rounds", "-1"])


def test_the_whole_eval_json_comes_from_the_dvc_cache_because_exp_show_drops_lists(tmp_path):
    from pipelines.core.dvc import dvc_command
    from pipelines.tools.sweep.results import cached_eval_json

    git = lambda *a: subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *a],  # noqa: E731
                                    cwd=tmp_path, check=True, capture_output=True, text=True).stdout.strip()
    git("init", "-q")
    dvc_command(["init", "-q"], tmp_path)
    full = {"k": 1, "intervals": {"tuned": {"ftfc": [0.0, 27.8]}}, "suite_comparisons": {"easy": {"tuned": {
        "ftfc": {"delta": 11.1, "interval": [0.0, 27.8], "significant": False, "tasks": 12}}}}}
    text = json.dumps(full)
    import hashlib
    md5 = hashlib.md5(text.encode()).hexdigest()
    cached = tmp_path / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    cached.parent.mkdir(parents=True)
    cached.write_text(text)
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"eval": {
        "cmd": "x", "outs": [{"path": "metrics/eval.json", "hash": "md5", "md5": md5, "size": len(text)}]}}}))
    git("add", "dvc.lock")
    git("commit", "-qm", "exp")
    rev = git("rev-parse", "HEAD")
    assert cached_eval_json(tmp_path, rev) == full  # the intervals are there
    assert cached_eval_json(tmp_path, "0" * 40) is None and cached_eval_json(tmp_path, None) is None
    cached.unlink()
    assert cached_eval_json(tmp_path, rev) is None  # not in the cache: fall back to what exp show gives
