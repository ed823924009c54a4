"""The teacher's answer for a PR: validated and retried; the template fallback."""

import json

from pipelines.llm.scripted import ScriptedModel
from pipelines.prs.git import mine_git
from pipelines.prs.queries import ask_teacher, template_query
from tests.prs.pr_fixtures import repo_with_prs, submit_call


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
