"""The teacher's submit_task arguments: what a valid draft is and why others are refused."""

from pipelines.synthesis.drafting import validate_task
from tests.synthesis.answers import GOOD


def test_validation_of_task():
    validate = validate_task("algorithm", "software")
    assert validate(GOOD)[1] is None
    problems = {
        "absolute": dict(GOOD, workspace_files={"/etc/passwd": "x"}),
        "pip": dict(GOOD, checks=["pip install numpy && python3 -c 'import numpy'"]),
        "pandas": dict(GOOD, checks=["python3 -c 'import pandas'"]),
        "trivial": dict(GOOD, checks=["true"]),
        "category": dict(GOOD, category="research"),
        "short": dict(GOOD, query="fix it"),
        "extra": dict(GOOD, answer=42),
    }
    reasons = {k: validate(v)[1] for k, v in problems.items()}
    assert "relative path" in reasons["absolute"] and "'pip'" in reasons["pip"] and "pandas" in reasons["pandas"]
    assert "always passes" in reasons["trivial"] and "instead of 'algorithm'" in reasons["category"]
    assert "shorter than" in reasons["short"] and "answer" in reasons["extra"]
    assert validate_task("algorithm", "software")(dict(GOOD, checks=["python3 pipeline_check.py"]))[1] is None
