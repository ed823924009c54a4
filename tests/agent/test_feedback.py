"""The simulated user's words: unmet requirements and what a user would observe, never the hidden check."""

import pytest

from pipelines.agent.feedback import exception_type, feedback_text
from pipelines.agent.users import SimulatedUser
from pipelines.agent.verifiers import Check, VerifierResult
from pipelines.llm.scripted import ScriptedModel

HIDDEN = "python3 - <<'EOF'\nassert open('out.txt').read() == 'SECRET-142'\nEOF"
TRACE = ('Traceback (most recent call last):\n  File "<stdin>", line 1, in <module>\n'
         "AssertionError: expected SECRET-142, got 7")


def result(*checks):
    return VerifierResult("tests", False, sum(c.passed for c in checks) / len(checks), list(checks))


def test_hidden_check_gives_its_requirement_and_the_exception_type_only():
    text = feedback_text(result(Check(HIDDEN, False, TRACE, "out.txt holds the total."),
                                Check("test -f out.txt", True, "", "out.txt exists.")))
    assert text == ("Not done yet: 1 of 2 requirements not met.\n"
                    "- out.txt holds the total.\n"
                    "  (a check of it fails with AssertionError)\n"
                    "Please fix this, check your work, and call finish again.")
    assert "SECRET" not in text and "assert" not in text and "<stdin>" not in text


def test_a_command_the_request_names_shows_its_status_and_last_lines():
    check = Check("python3 greet.py Ada", False, "line\n" * 3 + "Hello, world!\n", "It greets the name given.",
                  public=True, exit_code=0)
    text = feedback_text(result(check))
    assert "`python3 greet.py Ada` exits with status 0; its last lines:\n    line\n" in text
    assert text.count("    line") == 3 and "    Hello, world!" in text


def test_checks_of_one_requirement_read_as_one_and_none_policy_says_nothing_specific():
    checks = [Check(f"hidden {i}", False, "", "The report is right.") for i in range(3)]
    text = feedback_text(result(*checks, Check("x", True, "", "Another.")))
    assert text.splitlines()[:2] == ["Not done yet: 1 of 2 requirements not met.", "- The report is right."]
    assert "hidden" not in text
    assert feedback_text(result(*checks), "none") == (
        "The work is not accepted yet: it does not do everything the request asks.\n"
        "Please fix this, check your work, and call finish again.")
    with pytest.raises(ValueError, match="unknown feedback policy"):
        feedback_text(result(*checks), "answers")


def test_only_builtin_exception_names_are_passed_on():
    assert exception_type("Traceback ...\nKeyError: 'total'") == "KeyError"
    assert exception_type("boom\nFileNotFoundError: [Errno 2] No such file") == "FileNotFoundError"
    # a type the agent's own code defined could spell anything, an answer included
    assert exception_type("Traceback ...\nAnswer_142_18: x") is None
    assert exception_type("") is None and exception_type("1 != 2") is None


def test_the_simulator_model_sees_only_the_public_text():
    model = ScriptedModel([{"content": "The total in out.txt is still wrong."}])
    user = SimulatedUser(model)
    reply = user.respond([], result(Check(HIDDEN, False, TRACE, "out.txt holds the total.")), "Write out.txt.")
    prompt = model.requests[0]["messages"][0]["content"]
    assert "SECRET" not in prompt and "assert" not in prompt and "out.txt holds the total." in prompt
    assert reply.startswith("The total in out.txt is still wrong.") and "SECRET" not in reply
