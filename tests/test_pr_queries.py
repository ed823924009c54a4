"""PR-derived queries: filters, the teacher's JSON, and a replay episode that verifies against the gold patch."""

import json
import subprocess
import tempfile
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from pipelines.core.params import PRQueriesParams, parse_params
from pipelines.pr_queries import ask_teacher, filter_reason, pr_queries, template_query
from pipelines.llm.scripted import ScriptedModel
from pipelines.prs import mine_git, write_prs

GIT = ["git", "-c", "user.email=a@b.c", "-c", "user.name=dev", "-c", "commit.gpgsign=false"]


def repo_with_prs(root: Path) -> Path:
    repo = root / "proj"
    repo.mkdir(parents=True)
    run = lambda *a: subprocess.run([*GIT, *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    run("init", "-q", "-b", "main")
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n")
    (repo / "README.md").write_text("# calc\n")
    run("add", "-A")
    run("commit", "-qm", "initial")
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b  # the sum, not the difference\n\n\n"
                                  "def mul(a, b):\n    return a * b\n")
    run("commit", "-qam", "Fix add returning the difference (#1)")
    (repo / "README.md").write_text("# calc\n\nAdds and multiplies.\n")
    run("commit", "-qam", "Describe the module (#2)")
    return repo


def test_filters():
    params = PRQueriesParams(max_patch_tokens=50, single_file=True, cutoff=date(2020, 1, 1), per_repo_cap=1)
    prs = list(mine_git(repo_with_prs(Path(tempfile.mkdtemp()))))
    reasons = {pr.title: filter_reason(pr, params, Counter()) for pr in prs}
    assert reasons["Fix add returning the difference"] is None
    assert reasons["Describe the module"] == "docs or markdown only"
    fix = next(pr for pr in prs if pr.title.startswith("Fix"))
    assert filter_reason(fix, params.model_copy(update={"max_patch_tokens": 5}), Counter()) == "patch over the token budget"
    assert filter_reason(fix, params, Counter({fix.repo: 1})) == "per-repo cap reached"
    late = params.model_copy(update={"cutoff": date(2999, 1, 1)})
    assert filter_reason(fix, late, Counter()) == "before the temporal cutoff"


def _submit(**args):
    return {"content": "", "tool_calls": [{"type": "function", "function": {"name": "submit_query", "arguments": args}}]}


def test_teacher_answer_is_validated_and_retried(tmp_path):
    (pr,) = [p for p in mine_git(repo_with_prs(tmp_path)) if "Fix" in p.title]
    good = dict(query="The add function in calc.py returns the difference; make it return the sum please.",
                category="codebase_debugging", modified_files=["calc.py"])
    teacher = ScriptedModel(['<tool_call>\n{"name": "submit_query", "arguments": {"query": \n</tool_call>', _submit(**good)])
    answer, _ = ask_teacher(teacher, pr, attempts=2)
    assert answer == good
    sent = json.dumps(teacher.requests[0]["messages"])
    assert "return a + b" not in sent and "calc.py" in sent  # the patch body is never shown
    leaky = ScriptedModel([_submit(**{**good, "query": "In calc.py write: return a + b  # the sum, not the difference"})])
    answer, problem = ask_teacher(leaky, pr, attempts=1)
    assert answer is None and "copies a line of the patch" in problem
    bad_category = ScriptedModel([_submit(**{**good, "category": "astrology"})])
    answer, problem = ask_teacher(bad_category, pr, attempts=1)
    assert answer is None and "taxonomy" in problem


def test_stage_writes_queries_and_replay_verifies(tmp_path):
    repo = repo_with_prs(tmp_path)
    prs = list(mine_git(repo, repo_name=str(repo)))
    write_prs(tmp_path / "prs.jsonl", prs)
    script = tmp_path / "teacher.jsonl"
    script.write_text(json.dumps(_submit(query="The add function in calc.py subtracts; please make it add its two "
                                         "arguments.", category="codebase_debugging", modified_files=["calc.py"])) + "\n")
    params = parse_params({"llm": {"models": {"t": {"backend": "scripted", "script": str(script)},
                                              "embedded": {"backend": "local"}},
                                   "roles": {r: "t" for r in ("teacher", "critic", "user_simulator", "judge", "student")}},
                           "collect": {"teachers": [{"model": "replay", "sources": ["pr"]}]}})
    report = pr_queries(params, tmp_path, tmp_path / "prs.jsonl", tmp_path / "pr.jsonl", tmp_path / "report.json")
    assert report == {"mined": 2, "filtered": {"docs or markdown only": 1}, "kept_after_filters": 1, "queries": 1,
                      "skipped_by_teacher": {}, "writers": {"t": 1}}
    (line,) = (tmp_path / "pr.jsonl").read_text().splitlines()
    query = json.loads(line)
    assert query["workspace"]["git"] == str(repo) and query["verifier"]["kind"] == "reference_patch"
    assert "+    return a + b  # the sum" in query["verifier"]["patch"] and "return a + b" not in query["query"]

    from pipelines.agent.sandbox.bwrap import BwrapSandbox
    from pipelines.collect import Collector, Job
    from pipelines.core.schema import Query

    if not BwrapSandbox.available():
        pytest.skip("bubblewrap is needed for the replay episode")
    q = Query.model_validate(query)
    record = Collector(params, tmp_path).run(Job(q, "replay", "k1"))
    meta = record["meta"]
    assert meta["passed"] and meta["final"]["score"] == 1.0 and "+    return a + b  # the sum" in meta["final_diff"]
    assert all("return a + b" not in (m.get("content") or "") for m in record["messages"][:2])


def test_template_fallback(tmp_path):
    (pr,) = [p for p in mine_git(repo_with_prs(tmp_path)) if "Fix" in p.title]
    answer = template_query(pr)
    assert answer["query"].startswith("Fix add returning the difference.") and answer["modified_files"] == ["calc.py"]
    assert answer["category"] == "codebase_debugging"
