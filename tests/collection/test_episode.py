"""One collect episode's record (pipelines.collection.episode): what its meta says about the task."""

from pipelines.collection.episode import Collector
from pipelines.collection.plan import Job
from pipelines.core.params import parse_params
from pipelines.core.schema import Query, TrajectoryRecord


def pr_query(root) -> Query:
    solution = root / "solution"
    solution.mkdir()
    (solution / "value.py").write_text("VALUE = 7\n")
    return Query.model_validate({
        "id": "pr-octo-repo-7", "source": "pr", "domain": "software", "category": "codebase_debugging",
        "query": "Set VALUE in value.py to 7.", "workspace": {"files": {"value.py": "VALUE = None\n"}},
        "verifier": {"kind": "tests", "commands": ["python3 -c 'import value; assert value.VALUE == 7'"]},
        "provenance": {"pr": "octo/repo#7", "repo": "octo/repo", "number": 7, "solution_dir": "solution"}})


def test_a_pr_task_records_its_pull_request_key(tmp_path):
    params = parse_params({"collect": {"sandbox": "none", "rounds": 1}})
    collector = Collector(params, tmp_path)
    query = pr_query(tmp_path)
    meta = TrajectoryRecord.model_validate(collector.run(Job(query, "replay", "k1"))).meta
    assert meta.pr == "octo/repo#7" and meta.repo == "octo/repo" and meta.source == "pr" and meta.passed
    other = query.model_copy(update={"id": "human-7", "source": "human", "provenance": {"solution_dir": "solution"}})
    record = collector.run(Job(other, "replay", "k2"))
    assert "pr" not in record["meta"] and "repo" not in record["meta"]  # only PR tasks say it: the others stay
