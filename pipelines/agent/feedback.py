"""What the simulated user tells the agent after a failed round: a person's view, never the answer.

Policies (``collect.feedback`` / ``eval.feedback``, recorded in every trajectory's meta):

- ``requirements`` (default): which requirements are not met, in the task's own public sentences
  (:attr:`VerifierSpec.requirements`), and what a user would observe without the hidden material:
  for a command the request itself names, its exit status and the last lines of its output; for a
  hidden check, only that it fails and, when its output ends in a Python exception, the exception's
  type (a builtin name only: a type name chosen by the agent's own code could carry anything).
- ``none``: only that the work is not accepted yet.

Never in the text: a hidden check's command or source, its output (tracebacks quote the test file and
assertion messages quote expected values), a rubric criterion's text unless the task made it public, the
judge's rationale, a reference answer, gold file names, or scores derived from a gold patch. The canary
test (``tests/reliability/test_answer_leaks.py``) holds this against every hidden artifact kind.
"""

from __future__ import annotations

import builtins
import re
from typing import Literal

from pipelines.agent.verifiers import Check, VerifierResult

FeedbackPolicy = Literal["requirements", "none"]
FEEDBACK_POLICIES = ("requirements", "none")
PUBLIC_OUTPUT_LINES = 8
PUBLIC_OUTPUT_CHARS = 600
CLOSING = "Please fix this, check your work, and call finish again."
NOT_ACCEPTED = "The work is not accepted yet: it does not do everything the request asks."

#: Exception names a user may hear: Python's builtin ones (``AssertionError``, ``FileNotFoundError``...).
BUILTIN_EXCEPTIONS = frozenset(name for name, value in vars(builtins).items()
                               if isinstance(value, type) and issubclass(value, BaseException))
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?::|$)")


def feedback_text(result: VerifierResult, policy: FeedbackPolicy = "requirements") -> str:
    """The user's reply to a failed round under ``policy`` (see the module docstring)."""
    if policy not in FEEDBACK_POLICIES:
        raise ValueError(f"unknown feedback policy {policy!r}; choose one of {', '.join(FEEDBACK_POLICIES)}")
    failed = [check for check in result.checks if not check.passed]
    if policy == "none" or not failed:
        return f"{NOT_ACCEPTED}\n{CLOSING}"
    # checks that share a sentence read as one requirement, with what each of them showed
    by_requirement: dict[str, list[str]] = {}
    for check in failed:
        seen = by_requirement.setdefault(check.requirement or NOT_ACCEPTED, [])
        observed = observation(check)
        if observed and observed not in seen:
            seen.append(observed)
    total = len({check.requirement for check in result.checks})
    unmet = len(by_requirement)
    head = f"Not done yet: {unmet} of {total} requirement{'s' if total != 1 else ''} not met."
    lines = [f"- {sentence}" + "".join(f"\n  {seen}" for seen in observed_list)
             for sentence, observed_list in by_requirement.items()]
    return "\n".join([head, *lines, CLOSING])


def observation(check: Check) -> str:
    """What a user would see of a failed check without its hidden material ('' when nothing)."""
    if check.public:
        tail = last_lines(check.output)
        status = f"`{check.name.strip()}` exits with status {check.exit_code}"
        return f"{status}; its last lines:\n{_indent(tail)}" if tail else status
    kind = exception_type(check.output)
    return f"(a check of it fails with {kind})" if kind else ""


def exception_type(output: str) -> str | None:
    """The builtin exception type a failing Python program ended with, from its last non-empty line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines[-3:]):
        match = _EXCEPTION_LINE.match(line)
        if match and match.group(1) in BUILTIN_EXCEPTIONS:
            return match.group(1)
    return None


def last_lines(output: str) -> str:
    """The last few lines of a public command's output, cut to a readable size."""
    tail = "\n".join(output.rstrip().splitlines()[-PUBLIC_OUTPUT_LINES:])
    return tail[-PUBLIC_OUTPUT_CHARS:]


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())
