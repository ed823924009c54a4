"""pr_queries as a stage: queries and report from mined PRs; a replay episode verifies against the gold patch."""

import json

from pipelines.core.params import parse_params
from pipelines.pr_queries import pr_queries
from pipelines.prs.git import mine_git
from pipelines.prs.records import write_prs
from tests.prs.pr_fixtures import repo_with_prs, submit_call


def test_stage_writes_queries_and_replay_verifies(tmp_path):
    repo = repo_with_prs(tmp_path)
    prs = list(mine_git(repo, repo_name=str(repo)))
    write_prs(tmp_path / "prs.jsonl", prs)
    script = tmp_path / "teacher.jsonl"
    answer = submit_call(query="The add function in calc.py subtracts; please make it add its two arguments.",
                         category="codebase_debugging", modified_files=["calc.py"])
    script.write_text(json.dumps(answer) + "\n")
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

    from pipelines.collection.episode import Collector
    from pipelines.collection.plan import Job
    from pipelines.core.schema import Query
    from tests.sandbox_gate import require_bwrap_here

    require_bwrap_here()  # the replay episode runs in the sandbox
    q = Query.model_validate(query)
    record = Collector(params, tmp_path).run(Job(q, "replay", "k1"))
    meta = record["meta"]
    assert meta["passed"] and meta["final"]["score"] == 1.0 and "+    return a + b  # the sum" in meta["final_diff"]
    assert all("return a + b" not in (m.get("content") or "") for m in record["messages"][:2])
