"""A PR's own tests as its verifier (FAIL_TO_PASS and PASS_TO_PASS found by running them before and after the
PR, in the real sandbox with a real environment), and the judged comparison for the PRs without such a test,
on the example repository the project ships."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pipelines.agent.feedback import feedback_text
from pipelines.agent.harness import Harness
from pipelines.agent.verifiers import JUDGED_PATCH_CHECK, ReferencePatchVerifier, TestsVerifier, make_verifier
from pipelines.agent.workspace import DIFF_COMMAND, prepare_workspace
from pipelines.collection.config import CollectParams
from pipelines.llm.scripted import ScriptedModel
from pipelines.prs.config import PRQueriesParams
from pipelines.prs.git import mine_git
from pipelines.prs.queries import solution_files, template_query, to_query
from pipelines.prs.verification import choose_verifier, is_test_file, split_files
from tests.conftest import REPO

BUNDLE = "data/example-repo.bundle"
SLUG_DIFFERENTLY = ('"""URL slugs."""\n\n\ndef slugify(text):\n    kept = "".join(c if c.isalnum() else " " '
                    'for c in text.lower())\n    return "-".join(kept.split())\n')


def test_test_files_are_told_from_code():
    tests = ["tests/test_a.py", "tests/helpers.py", "tests/data/input.json", "pkg/test/util.py", "src/testing/x.py",
             "test_root.py", "pkg/b_test.py", "conftest.py", "pkg/conftest.py"]
    code = ["pkg/a.py", "pkg/testament.py", "tests.py", "pkg/attest.py", "docs/tests.md", "pkg/contest.py",
            "setup.py", "pkg/test_data.json"]
    assert [p for p in tests if not is_test_file(p)] == [] and [p for p in code if is_test_file(p)] == []


@pytest.fixture(scope="module")
def example_prs():
    """The example repository's PRs by number, mined from the shipped bundle."""
    return {pr.number: pr for pr in mine_git(REPO / BUNDLE, repo_name=BUNDLE)}


@pytest.fixture(scope="module")
def chosen(example_prs, env_cache):
    """The verifier each example PR gets (its tests run twice each in the sandbox; the environment built once)."""
    return {number: choose_verifier(pr, PRQueriesParams(), REPO) for number, pr in example_prs.items()}


@pytest.mark.needs_bwrap
def test_each_example_pr_gets_its_verifier_and_reason(chosen, example_prs):
    slug, count, wrap, case = (chosen[n].spec for n in (1, 2, 3, 4))
    assert slug.fail_to_pass == ["tests/test_slug.py::test_drops_punctuation"]
    assert slug.pass_to_pass == ["tests/test_slug.py::test_collapses_whitespace",
                                 "tests/test_slug.py::test_lowercases_and_joins_words"]
    # a new test module cannot be imported before the PR: its tests fail before, none passed in both
    assert count.fail_to_pass == ["tests/test_count.py::test_counts_words",
                                  "tests/test_count.py::test_empty_text_has_no_words"] and count.pass_to_pass == []
    assert wrap.fail_to_pass == ["tests/test_wrap.py::test_result_fits_the_width"]
    assert case.fail_to_pass == ["tests/test_case.py::test_letters_after_an_apostrophe_stay_lower_case"]  # PR on 0.1.x
    assert {n: c.reason for n, c in chosen.items()} == {
        1: "PR changes tests: 1 FAIL_TO_PASS, 2 PASS_TO_PASS", 2: "PR changes tests: 2 FAIL_TO_PASS, 0 PASS_TO_PASS",
        3: "PR changes tests: 1 FAIL_TO_PASS, 1 PASS_TO_PASS", 4: "PR changes tests: 1 FAIL_TO_PASS, 1 PASS_TO_PASS",
        5: "no FAIL_TO_PASS test: no test file changed", 6: "no FAIL_TO_PASS test: the PR changes only tests",
        7: "no FAIL_TO_PASS test: no test file changed"}
    for number in (1, 2, 3, 4):
        spec = chosen[number].spec
        code, tests = split_files(example_prs[number].files)
        assert spec.kind == "tests" and spec.env.packages == ["pytest==9.2.0"] and spec.pass_threshold == 1.0
        assert all(f"b/{f.path}" in spec.patch for f in code) and "tests/" not in spec.patch  # the gold solution
        assert all(f"b/{f.path}" in spec.test_patch for f in tests) and "textkit/" not in spec.test_patch
        assert chosen[number].seconds["tests_s"] > 0
    for number in (5, 6, 7):
        spec = chosen[number].spec
        assert (spec.kind, spec.comparison, spec.pass_threshold) == ("reference_patch", "judge", 0.7)
        assert spec.fail_to_pass == [] and spec.test_patch is None


def _task(example_prs, chosen, number, tmp_path):
    """The PR's query (a template request, as the stage writes it) and its laid-out base workspace; the sandbox
    with its environment."""
    pr = example_prs[number]
    answer = template_query(pr, solution_files(pr, chosen[number]))
    query = to_query(pr, answer, "template", REPO, PRQueriesParams(), chosen[number])
    workspace = prepare_workspace(query, tmp_path / f"ws{number}", REPO)
    sandbox = Harness(CollectParams(command_timeout_s=60)).sandbox(workspace, query.verifier.env)
    return query, workspace, sandbox


def _git(workspace: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(["git", *args], cwd=workspace, input=stdin, text=True, check=True,
                          capture_output=True).stdout


@pytest.mark.needs_bwrap
def test_the_gold_patch_and_a_different_fix_pass_the_untouched_base_and_cheats_do_not(example_prs, chosen, tmp_path):
    query, workspace, sandbox = _task(example_prs, chosen, 1, tmp_path)
    spec = query.verifier
    verifier = make_verifier(spec, sandbox, query=query.query)
    assert isinstance(verifier, TestsVerifier)
    # the request and its public sentences name no test and nothing of the test patch
    hidden = ["test_drops_punctuation", "test_slug.py", "Hello, World!", "hello-world"]
    assert not [h for h in hidden if h in query.query or any(h in r for r in spec.requirements)]

    base = verifier.verify(workspace)
    assert not base.passed and [(c.name, c.passed) for c in base.checks] == [
        ("FAIL_TO_PASS (1 test)", False), ("PASS_TO_PASS (2 tests)", True)]
    assert base.checks[0].output == "1 of 1 not passing: tests/test_slug.py::test_drops_punctuation (failed)"
    said = feedback_text(base)
    assert said.startswith("Not done yet: 1 of 2 requirements not met.\n- The change makes the behaviour")
    assert not [h for h in hidden if h in said]
    assert _git(workspace, "status", "--porcelain") == ""  # the hidden tests went to a scratch copy only

    # the agent rewrites the test to pass without fixing the code, and plants a conftest that skips everything
    (workspace / "tests" / "test_slug.py").write_text("def test_drops_punctuation():\n    pass\n")
    assert not verifier.verify(workspace).passed
    (workspace / "conftest.py").write_text("import pytest\n\n\ndef pytest_collection_modifyitems(items):\n"
                                           "    for item in items:\n        item.add_marker(pytest.mark.skip)\n")
    (workspace / "textkit" / "slug.py").write_text(SLUG_DIFFERENTLY)
    skipped = verifier.verify(workspace)
    assert not skipped.passed and skipped.checks[1].output.endswith("test_lowercases_and_joins_words (not run)")
    _git(workspace, "checkout", "-q", "--", ".")
    (workspace / "conftest.py").unlink()

    _git(workspace, "apply", "-", stdin=spec.patch)  # the gold patch: the code part only
    gold = verifier.verify(workspace)
    assert gold.passed and gold.score == 1.0 and [c.output for c in gold.checks] == ["it passes", "all 2 pass"]
    _git(workspace, "checkout", "-q", "--", ".")
    (workspace / "textkit" / "slug.py").write_text(SLUG_DIFFERENTLY)  # a correct fix, written differently
    assert SLUG_DIFFERENTLY not in spec.patch and verifier.verify(workspace).passed


@pytest.mark.needs_bwrap
def test_a_test_module_that_cannot_be_imported_fails_its_own_tests(example_prs, chosen, tmp_path):
    query, workspace, sandbox = _task(example_prs, chosen, 2, tmp_path)
    result = make_verifier(query.verifier, sandbox, query=query.query).verify(workspace)
    assert not result.passed and len(result.checks) == 1  # no PASS_TO_PASS test: one requirement
    assert result.checks[0].output == ("2 of 2 not passing: tests/test_count.py::test_counts_words (error), "
                                       "tests/test_count.py::test_empty_text_has_no_words (error)")


def _diff(sandbox) -> str:
    return sandbox.run(DIFF_COMMAND, scratch=True).output


@pytest.mark.needs_bwrap
def test_the_judged_comparison_for_a_pr_without_a_fail_to_pass_test(example_prs, chosen, tmp_path):
    query, workspace, sandbox = _task(example_prs, chosen, 5, tmp_path)
    spec = query.verifier
    idle = ScriptedModel([], name="judge")  # raises if asked
    verifier = make_verifier(spec, sandbox, judge=idle, query=query.query)
    verifier.diff_command = DIFF_COMMAND
    assert isinstance(verifier, ReferencePatchVerifier)
    untouched = verifier.verify(workspace)  # no change: decided without the judge
    assert not untouched.passed and untouched.score == 0.0 and untouched.checks[0].output.startswith("no change")
    _git(workspace, "apply", "-", stdin=spec.patch)
    gold = verifier.verify(workspace)  # the gold patch itself: decided without the judge
    assert gold.passed and gold.checks[0].output.startswith("the change equals the reference")
    assert idle.requests == []

    _git(workspace, "checkout", "-q", "--", ".")
    (workspace / "textkit" / "slug.py").write_text(
        '"""URL slugs."""\n\nimport re\n\n\ndef slugify(text, sep="-"):\n'
        '    return sep.join(re.findall(r"[a-z0-9]+", text.lower()))\n')
    judge = ScriptedModel(['Sure. {"score": 9, "reason": "Same behaviour; the docstring\\nis dropped."}',
                           '{"score": 3, "reason": "The separator is ignored."}', "I cannot tell."], name="judge")
    verifier = make_verifier(spec, sandbox, judge=judge, query=query.query)
    verifier.diff_command = DIFF_COMMAND
    different = verifier.verify(workspace)
    assert different.passed and different.score == 0.9
    (check,) = different.checks
    assert (check.name, check.method) == (JUDGED_PATCH_CHECK, "judge")
    assert check.output.startswith("judge 9/10: Same behaviour; the docstring is dropped.; exact-line F1 0.")
    shown = judge.requests[0]["messages"][0]["content"]
    assert spec.patch in shown and _diff(sandbox) in shown and query.query in shown
    wrong = verifier.verify(workspace)
    assert not wrong.passed and wrong.score == 0.3 and wrong.requirement_verdicts() == [False]
    said = feedback_text(wrong)
    assert "separator is ignored" not in said and "3/10" not in said and "sep.join" not in said
    assert verifier.verify(workspace).infra_error == "the judge's answer was not the JSON asked for"
    with pytest.raises(ValueError, match="needs a judge model"):
        make_verifier(spec, sandbox, query=query.query)


@pytest.mark.needs_bwrap
def test_query_records_its_verifier_and_hides_test_files_from_the_hint(example_prs, chosen):
    params = PRQueriesParams(modify_hint=True)
    pr = example_prs[1]
    query = to_query(pr, template_query(pr, ["textkit/slug.py"]), "template", REPO, params, chosen[1])
    assert query.provenance["verifier_reason"] == "PR changes tests: 1 FAIL_TO_PASS, 2 PASS_TO_PASS"
    assert query.query.endswith("The change should be made in textkit/slug.py. "
                                "You only need to modify textkit/slug.py.")
    assert query.workspace.git == BUNDLE and query.id == "pr-example-repo-1"
    record = json.loads(query.model_dump_json())
    assert record["verifier"]["fail_to_pass"] == chosen[1].spec.fail_to_pass
    judged = to_query(example_prs[5], template_query(example_prs[5]), "template", REPO, params, chosen[5])
    assert judged.provenance["verifier_reason"] == "no FAIL_TO_PASS test: no test file changed"
    assert judged.query.endswith("You only need to modify textkit/slug.py.")
