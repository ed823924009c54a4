"""The teacher's answer for a PR: validated and retried; the template fallback; LIMI's additions."""

import json

from pipelines.llm.scripted import ScriptedModel
from pipelines.prs.config import PRQueriesParams
from pipelines.prs.git import mine_git
from pipelines.prs.queries import ask_teacher, install_choice, modify_hint, template_query, to_query
from tests.prs.pr_fixtures import make_pr, repo_with_prs, submit_call


def test_teacher_answer_is_validated_and_retried(tmp_path):
    (pr,) = [p for p in mine_git(repo_with_prs(tmp_path)) if "Fix" in p.title]
    good = dict(query="The add function in calc.py returns the difference; make it return the sum please.",
                category="codebase_debugging", modified_files=["calc.py"])
    teacher = ScriptedModel(['<tool_call>\n{"name": "submit_query", "arguments": {"query": \n</tool_call>',
                             submit_call(**good)])
    answer, _ = ask_teacher(teacher, pr, attempts=2)
    assert answer == good
    sent = json.dumps(teacher.requests[0]["messages"])
    assert "return a + b" not in sent and "calc.py" in sent  # the patch body is never shown
    leaky = ScriptedModel([submit_call(**{**good,
                                          "query": "In calc.py write: return a + b  # the sum, not the difference"})])
    answer, problem = ask_teacher(leaky, pr, attempts=1)
    assert answer is None and "copies a line of the patch" in problem
    bad_category = ScriptedModel([submit_call(**{**good, "category": "astrology"})])
    answer, problem = ask_teacher(bad_category, pr, attempts=1)
    assert answer is None and "taxonomy" in problem


def test_template_fallback(tmp_path):
    (pr,) = [p for p in mine_git(repo_with_prs(tmp_path)) if "Fix" in p.title]
    answer = template_query(pr)
    assert answer["query"].startswith("Fix add returning the difference.") and answer["modified_files"] == ["calc.py"]
    assert answer["category"] == "codebase_debugging"


ANSWER = {"query": "Make the add function in calc.py return the sum", "category": "codebase_debugging",
          "modified_files": ["calc.py"]}


def test_the_modify_hint_lists_the_prs_files(tmp_path):
    one = make_pr(files=("calc.py",))
    assert modify_hint(one) == "You only need to modify calc.py."
    three = make_pr(files=("src/a.py", "src/b.py", "tests/test_a.py"), binary=("logo.png",))
    assert modify_hint(three) == "You only need to modify src/a.py, src/b.py and tests/test_a.py."
    params = PRQueriesParams(modify_hint=True)
    query = to_query(three, ANSWER, "t", tmp_path, params)
    assert query.query == ("Make the add function in calc.py return the sum. "
                           "You only need to modify src/a.py, src/b.py and tests/test_a.py.")
    assert query.provenance["modify_hint"] is True and "install_sentence" not in query.provenance
    assert query.provenance["repo"] == "o/r" and query.provenance["pr"] == "o/r#1"
    plain = to_query(three, ANSWER, "t", tmp_path, PRQueriesParams())
    assert plain.query == ANSWER["query"] and "modify_hint" not in plain.provenance  # off by default


def test_the_install_sentence_goes_to_the_seeded_share(tmp_path):
    prs = [make_pr(f"o/r{n % 7}", n) for n in range(1, 1001)]
    params = PRQueriesParams(install={"enabled": True, "probability": 0.4, "seed": 42})
    choices = [install_choice(pr, params) for pr in prs]
    share = sum(c is not None for c in choices) / len(prs)
    assert 0.36 <= share <= 0.44  # 0.4 of the queries, give or take the draw
    allowed = choices.count("allow") / sum(c is not None for c in choices)
    assert 0.42 <= allowed <= 0.58  # of those, half may install
    assert [install_choice(pr, params) for pr in reversed(prs)] == choices[::-1]  # per PR, whatever the order
    assert [install_choice(pr, params) for pr in prs] == choices  # deterministic
    other = params.model_copy(update={"install": params.install.model_copy(update={"seed": 7})})
    assert [install_choice(pr, other) for pr in prs] != choices  # the seed decides
    assert {install_choice(pr, PRQueriesParams()) for pr in prs} == {None}  # off by default
    always = params.model_copy(update={"install": params.install.model_copy(update={"probability": 1.0})})
    assert None not in {install_choice(pr, always) for pr in prs[:50]}

    pr = next(p for p, c in zip(prs, choices) if c == "forbid")
    query = to_query(pr, ANSWER, "t", tmp_path, params.model_copy(update={"modify_hint": True}))
    assert query.query.endswith("You only need to modify src/a.py. " + params.install.forbid)
    assert query.provenance["install_sentence"] == "forbid"
    pr = next(p for p, c in zip(prs, choices) if c is None)
    query = to_query(pr, ANSWER, "t", tmp_path, params)
    assert query.query == ANSWER["query"] and query.provenance["install_sentence"] is None
