"""pr_queries as a stage: queries and report from mined PRs; a replay episode verifies against the gold patch;
LIMI's preset on hand-built records."""

import json

from pipelines.core.params import parse_params
from pipelines.pr_queries import pr_queries
from pipelines.prs.git import mine_git
from pipelines.prs.records import write_prs
from tests.prs.pr_fixtures import make_pr, repo_with_prs, submit_call, word_tokenizer


def test_stage_writes_queries_and_replay_verifies(tmp_path):
    repo = repo_with_prs(tmp_path)
    prs = list(mine_git(repo, repo_name=str(repo)))
    write_prs(tmp_path / "prs.jsonl", prs)
    word_tokenizer(tmp_path / "models" / "base")  # where the default tokenizer is looked for
    script = tmp_path / "teacher.jsonl"
    answer = submit_call(query="The add function in calc.py subtracts; please make it add its two arguments.",
                         category="codebase_debugging", modified_files=["calc.py"])
    script.write_text(json.dumps(answer) + "\n")
    params = parse_params({"llm": {"models": {"t": {"backend": "scripted", "script": str(script)},
                                              "embedded": {"backend": "local"}},
                                   "roles": {r: "t" for r in ("teacher", "critic", "user_simulator", "judge", "student")}},
                           "collect": {"teachers": [{"model": "replay", "sources": ["pr"]}]}})
    report = pr_queries(params, tmp_path, tmp_path / "prs.jsonl", tmp_path / "pr.jsonl", tmp_path / "report.json")
    assert report == {"mined": 2, "patch_tokens": "tokenizer models/base", "filtered": {"docs or markdown only": 1},
                      "kept_after_filters": 1, "queries": 1, "skipped_by_teacher": {}, "writers": {"t": 1},
                      "additions": {}, "verified_by": {"tests": 0, "judge": 1},
                      "judge_reasons": {"no FAIL_TO_PASS test: no test file changed": 1},
                      "fail_to_pass_tests": 0, "pass_to_pass_tests": 0}
    (line,) = (tmp_path / "pr.jsonl").read_text().splitlines()
    query = json.loads(line)
    assert query["workspace"]["git"] == str(repo) and query["verifier"]["kind"] == "reference_patch"
    assert query["verifier"]["comparison"] == "judge"  # no test changed: the judge compares with the gold patch
    assert "+    return a + b  # the sum" in query["verifier"]["patch"] and "return a + b" not in query["query"]
    assert query["provenance"]["repo"] == str(repo) and query["provenance"]["pr"] == f"{repo}#1"

    from pipelines.collection.episode import Collector
    from pipelines.collection.plan import Job
    from pipelines.core.schema import Query
    from tests.sandbox_gate import require_bwrap_here

    require_bwrap_here()  # the replay episode runs in the sandbox
    q = Query.model_validate(query)
    record = Collector(params, tmp_path).run(Job(q, "replay", "k1"))
    meta = record["meta"]
    assert meta["passed"] and meta["final"]["score"] == 1.0 and "+    return a + b  # the sum" in meta["final_diff"]
    assert meta["verifier_reason"] == "no FAIL_TO_PASS test: no test file changed"
    assert meta["pr"] == f"{repo}#1" and meta["repo"] == str(repo)  # the trajectory names its PR and repository
    assert all("return a + b" not in (m.get("content") or "") for m in record["messages"][:2])


def test_limi_preset_counts_every_drop_and_adds_its_sentences(tmp_path):
    day = lambda n: f"2024-01-{n:02d}T12:00:00Z"  # noqa: E731
    long_patch = "@@ -1 +1 @@\n-a\n" + "+a b c d e f g h i j\n" * 150  # ~1,700 words and marks, ~3,000 characters
    prs = [make_pr("o/a", 1, ("src/a.py",), day(1)), make_pr("o/a", 2, ("src/x.py", "NOTES.md"), day(2)),
           make_pr("o/a", 3, ("src/x.py", "src/y.py"), day(3)),
           *(make_pr("o/a", n, ("src/z.py",), day(n + 3)) for n in (4, 5, 6)),
           make_pr("o/b", 1, ("big.py",), day(1), patch=long_patch), make_pr("o/b", 2, ("b.py",), day(2)),
           *(make_pr("o/c", n, (f"c{n}.py",), day(n)) for n in (1, 2, 3, 4))]
    write_prs(tmp_path / "prs.jsonl", prs)
    word_tokenizer(tmp_path / "models" / "base")
    roles = {r: "t" for r in ("teacher", "critic", "user_simulator", "judge", "student")}
    params = parse_params({"llm": {"models": {"t": {"backend": "scripted", "script": str(tmp_path / "none.jsonl")},
                                              "embedded": {"backend": "local"}}, "roles": roles},
                           "pr_queries": {"preset": "limi", "per_repo_cap": 0}})  # no teacher: template queries
    report = pr_queries(params, tmp_path, tmp_path / "prs.jsonl", tmp_path / "pr.jsonl", tmp_path / "report.json")
    assert report["filtered"] == {"in the later share of its repository": 6, "touches a markdown file": 1,
                                  "more than one file": 1, "patch over the token budget": 1,
                                  "not drawn in the per-repository sample": 1}
    assert report["mined"] == 12 and report["kept_after_filters"] == report["queries"] == 2
    assert report["patch_tokens"] == "tokenizer models/base" and report["writers"] == {"template": 2}
    assert report["additions"]["modify_hint"] == 2
    assert sum(v for k, v in report["additions"].items() if k.startswith("install_")) == 2
    assert json.loads((tmp_path / "report.json").read_text()) == report
    queries = [json.loads(line) for line in (tmp_path / "pr.jsonl").read_text().splitlines()]
    assert [q["provenance"]["repo"] for q in queries] == ["o/a", "o/c"] and queries[0]["provenance"]["pr"] == "o/a#1"
    assert "You only need to modify src/a.py." in queries[0]["query"]
    again = pr_queries(params, tmp_path, tmp_path / "prs.jsonl", tmp_path / "pr2.jsonl", tmp_path / "report2.json")
    assert again == report and (tmp_path / "pr2.jsonl").read_text() == (tmp_path / "pr.jsonl").read_text()


def test_default_sources_give_tasks_verified_by_tests_and_by_the_judge(tmp_path, env_cache):
    """The default run's PR path: the shipped bundle mined, 4 PRs verified by their tests and 2 by the judge,
    and replay episodes that pass both verifiers without a word of the hidden tests in them."""
    import shutil

    from pipelines.collection.episode import Collector
    from pipelines.collection.plan import Job
    from pipelines.core.params import load_params
    from pipelines.core.schema import read_queries
    from pipelines.mine_prs import mine
    from tests.conftest import REPO
    from tests.sandbox_gate import require_bwrap_here

    require_bwrap_here()  # the PRs' tests run in the sandbox
    (tmp_path / "data").mkdir()
    shutil.copy(REPO / "data" / "example-repo.bundle", tmp_path / "data" / "example-repo.bundle")
    word_tokenizer(tmp_path / "models" / "base")
    defaults = load_params(REPO / "params.yaml")
    mined = mine(defaults.mine_prs, tmp_path / "prs.jsonl", tmp_path)
    assert mined["total"] == 7 and mined["sources"][0]["patterns"] == {
        "merge pull request": 1, "merge pull request on a merged branch": 1, "merge titled (#N)": 1, "squash (#N)": 4}
    roles = {r: "t" for r in ("teacher", "critic", "user_simulator", "judge", "student")}
    (tmp_path / "none.jsonl").write_text("")  # no turns: the teacher fails (template requests), the judge is never asked
    params = parse_params({**defaults.model_dump(mode="json"), "llm": {
        "models": {"t": {"backend": "scripted", "script": str(tmp_path / "none.jsonl")}, "embedded": {"backend": "local"}},
        "roles": roles}})
    report = pr_queries(params, tmp_path, tmp_path / "prs.jsonl", tmp_path / "pr.jsonl", tmp_path / "report.json")
    assert report["filtered"] == {"docs or markdown only": 1} and report["queries"] == 6
    assert report["verified_by"] == {"tests": 4, "judge": 2}
    assert report["judge_reasons"] == {"no FAIL_TO_PASS test: no test file changed": 1,
                                       "no FAIL_TO_PASS test: the PR changes only tests": 1}
    assert (report["fail_to_pass_tests"], report["pass_to_pass_tests"]) == (5, 4)
    queries = {q.id: q for q in read_queries(tmp_path / "pr.jsonl")}
    collector = Collector(params, tmp_path)
    for task in ("pr-example-repo-1", "pr-example-repo-5"):
        query = queries[task]
        record = collector.run(Job(query, "replay", task))
        meta = record["meta"]
        assert meta["passed"] and meta["final"]["score"] == 1.0, meta["final"]
        assert meta["verifier_reason"] == query.provenance["verifier_reason"]
        text = json.dumps(record["messages"])
        assert not [t for t in query.verifier.fail_to_pass + query.verifier.pass_to_pass if t.split("::")[1] in text]
    assert queries["pr-example-repo-1"].verifier.kind == "tests" and "tests/" not in json.dumps(
        collector.run(Job(queries["pr-example-repo-1"], "replay", "again"))["meta"]["final_diff"])
