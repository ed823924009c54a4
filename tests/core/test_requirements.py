"""The public requirement sentences of the shipped tasks give nothing away.

When a check fails, the simulated user repeats that check's sentence from ``VerifierSpec.requirements``. A
sentence may state only what the request itself says: every number and every quoted or backticked literal
in it must occur in the request, and it must not copy six words in a row from the hidden check that the
request does not also contain. The builtin and easy suites' subtasks may also use the words of earlier subtasks.
"""

from __future__ import annotations

import re

import pytest

from pipelines.core.schema import VerifierSpec
from pipelines.core.seeds import load_seed_tasks
from pipelines.evaluation.suites.builtin import load_builtin
from pipelines.evaluation.suites.easy import load_easy
from tests.conftest import REPO

NUMBER = re.compile(r"\d+(?:\.\d+)?")
LITERAL = re.compile(r"`([^`]+)`|\"([^\"]+)\"|(?<!\w)'([^'\n]+)'(?!\w)")
WORD = re.compile(r"\w+")
WINDOW = 6


def _windows(text: str) -> set[tuple[str, ...]]:
    words = WORD.findall(text.lower())
    return {tuple(words[i:i + WINDOW]) for i in range(len(words) - WINDOW + 1)}


def leaks(sentence: str, request: str, check: str) -> list[str]:
    """What in ``sentence`` is not backed by ``request``: numbers, quoted or backticked literals, and
    six-word runs copied from ``check`` (a command or rubric criterion). Empty when the sentence is clean."""
    problems = []
    request_numbers = set(NUMBER.findall(request))
    problems += [f"number {n!r} is not in the request" for n in NUMBER.findall(sentence) if n not in request_numbers]
    for match in LITERAL.finditer(sentence):
        literal = next(g for g in match.groups() if g is not None)
        if literal not in request:
            problems.append(f"literal {match.group(0)!r} is not in the request")
    copied = (_windows(sentence) & _windows(check)) - _windows(request)
    problems += [f"copies {' '.join(w)!r} from the check" for w in sorted(copied)]
    return problems


def _cases() -> list[tuple[str, str, VerifierSpec]]:
    """(name, request text, verifier) for every builtin and easy subtask and every seed task."""
    cases = []
    for task in load_builtin() + load_easy():
        for number, subtask in enumerate(task.subtasks, 1):
            request = "\n".join(s.query for s in task.subtasks[:number])
            cases.append((f"{task.suite}/{task.id}#{number}", request, subtask.verifier))
    for query in load_seed_tasks(REPO / "data" / "seeds"):
        cases.append((f"seeds/{query.id}", query.query, query.verifier))
    return cases


CASES = _cases()


def test_leaks_rejects_expected_values_and_copied_checks():
    request = "Drop trips shorter than 60 seconds and write cleaning.json as `{\"kept\": K, \"dropped\": D}`."
    check = "assert got == {\"kept\": 142, \"dropped\": 18}, f\"expected 142 kept and 18 dropped (13 too short)\""
    assert leaks("cleaning.json reports how many trips were kept and dropped.", request, check) == []
    assert leaks("Trips shorter than 60 seconds are dropped and counted in `{\"kept\": K, \"dropped\": D}`.",
                 request, check) == []
    assert leaks("cleaning.json: expected 142 kept", request, check) == ["number '142' is not in the request"]
    assert leaks("cleaning.json is `{\"kept\": 142}`", request, check) == [
        "number '142' is not in the request", "literal '`{\"kept\": 142}`' is not in the request"]
    assert leaks("The file says \"too short\" for short trips.", request, check) == [
        "literal '\"too short\"' is not in the request"]
    copied = leaks("Expected kept and dropped, too short as well.", request,
                   "assert ok, 'expected kept and dropped too short as well'")
    assert sorted(copied) == ["copies 'and dropped too short as well' from the check",
                              "copies 'expected kept and dropped too short' from the check",
                              "copies 'kept and dropped too short as' from the check"]


def test_every_shipped_task_has_its_requirements():
    assert len(CASES) >= 12 * 2 + 10 + 22
    assert sum(name.startswith("easy/") for name, _, _ in CASES) >= 10
    missing = [f"{name}: {len(v.requirements)} sentence(s) for {len(v.criteria or v.commands)} check(s)"
               for name, _, v in CASES if len(v.requirements) != len(v.criteria if v.kind == "rubric" else v.commands)]
    assert not missing, "one requirement sentence per check:\n" + "\n".join(missing)


@pytest.mark.parametrize("name,request_text,verifier", CASES, ids=[c[0] for c in CASES])
def test_requirements_state_only_what_the_request_says(name, request_text, verifier):
    checks = verifier.criteria if verifier.kind == "rubric" else verifier.commands
    problems = [f"{name} check {i + 1}: {problem}\n    sentence: {sentence}"
                for i, (sentence, check) in enumerate(zip(verifier.requirements, checks))
                for problem in leaks(sentence, request_text, check)]
    assert not problems, "requirement sentences reveal what the request does not say:\n" + "\n".join(problems)
