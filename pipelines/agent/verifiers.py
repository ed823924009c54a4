"""Verifiers: how an episode's result is checked when the agent calls ``finish``.

- ``tests``: a PR task's own tests, as SWE-bench checks a task: the hidden test patch laid over a scratch
  copy of the final workspace (:mod:`pipelines.agent.hidden_tests`), one check that every FAIL_TO_PASS
  test passes and one that every PASS_TO_PASS test still does; then each command is one check run in the
  sandbox on the final workspace; score = share passing.
- ``reference_patch``: the workspace's changes against the gold patch, never shown to the agent: by
  ``comparison: lines``, files touched and changed lines (F1 of each, averaged); by ``comparison: judge``,
  the judge model's score (0-10) of how well the diff does what the gold patch does, with its reason and
  the exact-line F1 kept beside it (an empty diff and a diff equal to the gold patch need no judge).
  Listed commands, if any, must also pass.
- ``rubric``: the judge model scores each criterion (met or not, with a one-line rationale) from the
  evidence of :mod:`pipelines.agent.evidence`; the spec's commands, if any, are requirements checked by
  execution, run in the sandbox first and shown to the judge. Each check's ``method`` says which decided it.

A check's ``name`` and ``output`` are hidden material (the command with its expected values, the judge's
rationale): they stay on the host, in records and for a person. What the agent may hear about a check is
its ``requirement`` (the task's public sentence) and, for a command the request itself names, what
running it shows; :mod:`pipelines.agent.feedback` words that.
"""

from __future__ import annotations

import difflib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipelines.agent.evidence import Run, gather_evidence
from pipelines.agent.hidden_tests import PATCH_FAILED, hidden_tests_command, parse_outcomes
from pipelines.core.schema import VerifierSpec

log = logging.getLogger(__name__)
CHECK_OUTPUT_CHARS = 1500


GENERIC_REQUIREMENT = "Requirement {n} of the request is not met yet."
PATCH_REQUIREMENT = "The change does not yet do what the request asks."
JUDGED_PATCH_CHECK = "the change does what the reference does (judged)"


@dataclass
class Check:
    """One check's result. ``name``/``output`` are hidden; ``requirement`` is public; ``public`` marks a
    command the request itself names (its output is then what the user would see running it too);
    ``method`` is how the requirement was decided: ``judge`` (the judge model) or ``execution`` (a command
    run in the sandbox, passing on exit status 0)."""

    name: str
    passed: bool
    output: str = ""
    requirement: str = ""
    public: bool = False
    exit_code: int | None = None
    method: str = "judge"


def requirement_for(spec: VerifierSpec, index: int) -> str:
    """The public sentence of check ``index`` (0-based): the task's own, else a generic one."""
    if index < len(spec.requirements):
        return spec.requirements[index]
    return GENERIC_REQUIREMENT.format(n=index + 1)


def is_public_command(command: str, query: str) -> bool:
    """Whether the request names ``command`` verbatim, so running it reveals nothing hidden."""
    text = command.strip()
    return bool(text) and bool(query) and text in query


def command_check(spec: VerifierSpec, index: int, command: str, res, query: str) -> Check:
    """A command's result as a Check, with its public sentence and whether the request names it."""
    return Check(command, res.exit_code == 0, res.output[-CHECK_OUTPUT_CHARS:], requirement_for(spec, index),
                 is_public_command(command, query), res.exit_code, method="execution")


@dataclass
class VerifierResult:
    """Outcome of one verification. ``infra_error`` is set when the verifier itself could not run."""

    kind: str
    passed: bool
    score: float
    checks: list[Check] = field(default_factory=list)
    infra_error: str | None = None

    def summary(self) -> str:
        """Short text for a person (the annotator at the terminal, a log): what failed and how.

        Hidden material (check commands, expected values, judge rationales): never sent to the agent;
        the agent hears :func:`pipelines.agent.feedback.feedback_text` instead."""
        if self.infra_error:
            return f"The checks could not run: {self.infra_error}"
        failed = [c for c in self.checks if not c.passed]
        if not failed:
            return f"All {len(self.checks)} checks pass."
        lines = [f"{len(failed)} of {len(self.checks)} checks fail:"]
        for check in failed[:4]:
            out = check.output.strip()[-400:]
            lines.append(f"- {check.name}" + (f"\n  {out}" if out else ""))
        return "\n".join(lines)

    def requirement_verdicts(self) -> list[bool]:
        """One verdict per requirement (see :func:`requirement_count`); empty when the verifier could not run.

        A check is a requirement, except that a reference patch's two comparisons (files, lines) are one
        requirement together: the change the request asks for.
        """
        if self.infra_error:
            return []
        if self.kind == "reference_patch":
            compared = 1 if self.checks and self.checks[0].name == JUDGED_PATCH_CHECK else 2
            patch, commands = self.checks[:compared], self.checks[compared:]
            return [bool(patch) and all(c.passed for c in patch)] + [c.passed for c in commands]
        return [c.passed for c in self.checks]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def requirement_count(spec: VerifierSpec) -> int:
    """How many requirements a verifier checks: one per command, rubric criterion or group of a PR's tests
    (a reference patch is one more); at least one, so a query without checks still counts as one."""
    if spec.kind == "reference_patch":
        return 1 + len(spec.commands)
    return max(1, spec.check_count())


def needs_judge(spec: VerifierSpec) -> bool:
    """Whether verifying ``spec`` asks the judge model: a rubric, or a reference patch compared by the judge."""
    return spec.kind == "rubric" or (spec.kind == "reference_patch" and spec.comparison == "judge")


class Verifier(Protocol):
    def verify(self, workspace: Path) -> VerifierResult: ...


class TestsVerifier:
    """Run the PR's hidden tests (when the spec lists FAIL_TO_PASS tests) and each command in the sandbox;
    pass when the share of checks passing reaches the threshold."""

    __test__ = False  # not a pytest class, despite the name

    def __init__(self, spec: VerifierSpec, sandbox, query: str = ""):
        self.spec = spec
        self.sandbox = sandbox
        self.query = query

    def verify(self, workspace: Path) -> VerifierResult:
        checks = self._pr_tests()
        offset = len(checks)
        for index, command in enumerate(self.spec.commands):
            res = self.sandbox.run(command, timeout_s=self.spec.timeout_s, scratch=True)
            checks.append(command_check(self.spec, offset + index, command, res, self.query))
        return _scored("tests", checks, self.spec.pass_threshold)

    def _pr_tests(self) -> list[Check]:
        """The FAIL_TO_PASS check and, if the spec lists any, the PASS_TO_PASS check, from one run of all of
        them on a scratch copy with the test patch laid over it.

        A listed test counts as passing only when pytest reports it passed: failed, in error, skipped, in a
        file that cannot be imported, renamed away, not run because of a timeout or because the test patch
        does not apply all count as not passing; a group passes when all its tests pass. Outputs name the
        tests that did not pass (hidden material) and never pytest's timings, so a rerun records the same.
        """
        spec = self.spec
        if not spec.fail_to_pass:
            return []
        groups = [("FAIL_TO_PASS", spec.fail_to_pass)] + ([("PASS_TO_PASS", spec.pass_to_pass)]
                                                          if spec.pass_to_pass else [])
        command = hidden_tests_command(spec.test_patch or "", [*spec.fail_to_pass, *spec.pass_to_pass])
        res = self.sandbox.run(command, timeout_s=spec.timeout_s, scratch=True)
        outcomes = parse_outcomes(res.output) if res.exit_code != PATCH_FAILED else {}
        why = ("the test patch does not apply; " if res.exit_code == PATCH_FAILED else
               "timed out; " if res.timed_out else "")
        checks = []
        for index, (name, tests) in enumerate(groups):
            missed = [t for t in tests if outcomes.get(t) != "passed"]
            if missed:
                shown = ", ".join(f"{t} ({outcomes.get(t, outcomes.get(t.split('::')[0], 'not run'))})"
                                  for t in missed[:20])
                output = f"{why}{len(missed)} of {len(tests)} not passing: {shown}"
            else:
                output = "it passes" if len(tests) == 1 else f"all {len(tests)} pass"
            checks.append(Check(f"{name} ({len(tests)} test{'s' if len(tests) != 1 else ''})", not missed, output,
                                requirement_for(spec, index), exit_code=res.exit_code, method="execution"))
        return checks


def _scored(kind: str, checks: list[Check], threshold: float) -> VerifierResult:
    score = sum(c.passed for c in checks) / len(checks) if checks else 0.0
    return VerifierResult(kind, bool(checks) and score >= threshold, score, checks)


def patch_changes(patch: str) -> tuple[set[str], set[tuple[str, str]]]:
    """Files touched and (file, '+line'/'-line') changes of a unified diff, whitespace-normalised."""
    files: set[str] = set()
    lines: set[tuple[str, str]] = set()
    current = None
    for raw in patch.splitlines():
        if raw.startswith("+++ ") or raw.startswith("--- "):
            name = raw[4:].strip().split("\t")[0]
            if name != "/dev/null":
                current = name[2:] if name[:2] in ("a/", "b/") else name
                files.add(current)
            continue
        if raw.startswith(("diff ", "index ", "@@")) or current is None:
            continue
        if raw[:1] in "+-" and raw[1:].strip():
            lines.add((current, raw[0] + " ".join(raw[1:].split())))
    return files, lines


def _f1(got: set, want: set) -> float:
    if not got and not want:
        return 1.0
    hit = len(got & want)
    return 0.0 if hit == 0 else 2 * hit / (len(got) + len(want))


PATCH_JUDGE_PROMPT = """You are reviewing a code change against a reference solution of the same request.

Request:
{query}

Reference solution (a unified diff against the starting code):
{reference}

The change to review (a unified diff against the same starting code):
{candidate}

Does the change do what the reference does for this request? Code written differently that behaves the same
counts as fully correct; missing behaviour, wrong behaviour or breaking something else does not. Score from
0 (does none of it) to 10 (does all of it, equivalently).

Answer with JSON only: {{"score": <integer 0-10>, "reason": "<one line>"}}"""


class ReferencePatchVerifier:
    """Compare the workspace's diff (``git diff`` against the base commit) with the gold patch: by changed
    lines, or (``comparison: judge``) by the judge model."""

    def __init__(self, spec: VerifierSpec, sandbox, diff_command: str = "git add -A >/dev/null 2>&1; git diff --cached HEAD",
                 query: str = "", judge=None, evidence_tokens: int = 6000):
        self.spec = spec
        self.sandbox = sandbox
        self.diff_command = diff_command
        self.query = query
        self.judge = judge
        self.evidence_tokens = evidence_tokens
        self.last_prompt = ""  # what the judge was last shown (hidden material: for tests and a person)

    def verify(self, workspace: Path) -> VerifierResult:
        res = self.sandbox.run(self.diff_command, timeout_s=self.spec.timeout_s, scratch=True)
        if res.exit_code != 0:
            return VerifierResult("reference_patch", False, 0.0, infra_error=f"git diff failed: {res.output[-300:]}")
        got_files, got_lines = patch_changes(res.output)
        want_files, want_lines = patch_changes(self.spec.patch or "")
        file_f1, line_f1 = _f1(got_files, want_files), _f1(got_lines, want_lines)
        if self.spec.comparison == "judge":
            judged = self._judged(res.output, got_lines, file_f1, line_f1)
            if isinstance(judged, VerifierResult):
                return judged
            checks, score = judged
        else:
            missing = sorted(want_files - got_files)
            # both patch checks are derived from the gold patch: their public sentence names no file and no score
            checks = [
                Check("files touched match the reference", file_f1 == 1.0,
                      f"F1 {file_f1:.2f}" + (f"; not changed: {', '.join(missing[:5])}" if missing else ""),
                      PATCH_REQUIREMENT, method="execution"),
                Check("changed lines match the reference", line_f1 == 1.0, f"F1 {line_f1:.2f}", PATCH_REQUIREMENT,
                      method="execution"),
            ]
            score = (file_f1 + line_f1) / 2
        compared = len(checks)
        for index, command in enumerate(self.spec.commands):
            run = self.sandbox.run(command, timeout_s=self.spec.timeout_s, scratch=True)
            checks.append(command_check(self.spec, index, command, run, self.query))
        if self.spec.commands:
            score = (score + sum(c.passed for c in checks[compared:]) / len(self.spec.commands)) / 2
        return VerifierResult("reference_patch", score >= self.spec.pass_threshold, score, checks)

    def _judged(self, diff: str, got_lines: set, file_f1: float, line_f1: float
                ) -> tuple[list[Check], float] | VerifierResult:
        """The judged comparison as (checks, score), or a VerifierResult when the judge could not answer.

        No change at all scores 0 and a change equal to the gold patch line for line scores 1 without
        asking the judge (both decided by the comparison, so ``execution``); the line F1 stays in the output.
        """
        figures = f"exact-line F1 {line_f1:.2f}, files F1 {file_f1:.2f}"
        if not got_lines:
            return [Check(JUDGED_PATCH_CHECK, False, f"no change was made; {figures}", PATCH_REQUIREMENT,
                          method="execution")], 0.0
        if file_f1 == 1.0 and line_f1 == 1.0:
            return [Check(JUDGED_PATCH_CHECK, True, f"the change equals the reference; {figures}", PATCH_REQUIREMENT,
                          method="execution")], 1.0
        if self.judge is None:
            raise ValueError("a reference patch compared by the judge needs a judge model (params: llm.roles.judge)")
        budget = self.evidence_tokens * 4 // 2  # characters for each diff (about four a token)
        self.last_prompt = PATCH_JUDGE_PROMPT.format(query=self.query, reference=_cut(self.spec.patch or "", budget),
                                                     candidate=_cut(diff, budget))
        try:
            reply = self.judge.chat([{"role": "user", "content": self.last_prompt}], None)
        except Exception as exc:  # the judge failing is an infrastructure problem, not the agent's
            return VerifierResult("reference_patch", False, 0.0, infra_error=f"judge failed: {str(exc)[:200]}")
        parsed = parse_patch_judgement(reply.content)
        if parsed is None:
            return VerifierResult("reference_patch", False, 0.0,
                                  infra_error="the judge's answer was not the JSON asked for")
        points, reason = parsed
        score = points / 10
        return [Check(JUDGED_PATCH_CHECK, score >= self.spec.pass_threshold, f"judge {points}/10: {reason}; {figures}",
                      PATCH_REQUIREMENT, method="judge")], score


def _cut(text: str, limit: int) -> str:
    """``text`` up to ``limit`` characters, with a note of what was left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters not shown]\n"


def parse_patch_judgement(text: str) -> tuple[int, str] | None:
    """The judge's ``{"score": 0-10, "reason": ...}`` (prose around it tolerated) as (points, reason on one
    line); None when it cannot be read or the score is not a whole number from 0 to 10."""
    start, end = (text or "").find("{"), (text or "").rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start:end + 1])
    except json.JSONDecodeError:
        return None
    score = data.get("score") if isinstance(data, dict) else None
    if isinstance(score, bool) or not isinstance(score, (int, float)) or score != int(score) or not 0 <= score <= 10:
        return None
    return int(score), " ".join(str(data.get("reason", "")).split())[:300]


RUBRIC_PROMPT = """You are grading an assistant's work against a list of requirements.

Task given to the assistant:
{query}

Requirements to decide:
{criteria}

Evidence: the assistant's report, checks the checker ran, the outputs of the assistant's last commands and
the files it created or changed against the starting workspace (the most relevant first; what did not fit
is listed at the end). Judge only from this evidence; a requirement the evidence does not show is not met.

{evidence}

Answer with JSON only, one entry per requirement above: {{"scores": [{{"criterion": <number>, "met": true|false, "rationale": "<one line>"}}, ...]}}"""


class RubricVerifier:
    """Run the spec's commands (requirements checked by execution), then ask the judge model whether each
    criterion is met, showing it the evidence of :func:`pipelines.agent.evidence.gather_evidence` within
    ``evidence_tokens``; an unparseable answer is a verifier error.

    ``messages`` is the conversation so far when the harness lets the judge see it (the agent's report and
    the outputs of its last commands come from there); ``sandbox`` runs the commands and reads the
    workspace's changes against its baseline on scratch copies. Checks come criteria first, then commands,
    matching the order of ``spec.requirements``.
    """

    def __init__(self, spec: VerifierSpec, judge, query: str, *, sandbox=None, evidence_tokens: int = 6000):
        self.spec = spec
        self.judge = judge
        self.query = query
        self.sandbox = sandbox
        self.evidence_tokens = evidence_tokens
        self.messages: list[dict[str, Any]] = []
        self.last_prompt = ""  # what the judge was last shown (hidden material: for tests and a person)

    def verify(self, workspace: Path) -> VerifierResult:
        executed = self._execute()
        judged: list[Check] = []
        if self.spec.criteria:
            runs = [Run(c.name, c.exit_code, c.output) for c in executed]
            evidence = gather_evidence(workspace, self.sandbox, [*self.spec.criteria, *self.spec.commands],
                                       messages=self.messages, runs=runs, budget_tokens=self.evidence_tokens,
                                       timeout_s=self.spec.timeout_s)
            criteria = "\n".join(f"{i}. {c}" for i, c in enumerate(self.spec.criteria, 1))
            self.last_prompt = RUBRIC_PROMPT.format(query=self.query, criteria=criteria, evidence=evidence.text)
            try:
                reply = self.judge.chat([{"role": "user", "content": self.last_prompt}], None)
            except Exception as exc:  # the judge failing is an infrastructure problem, not the agent's
                return VerifierResult("rubric", False, 0.0, checks=executed, infra_error=f"judge failed: {str(exc)[:200]}")
            parsed = parse_rubric_answer(reply.content, self.spec.criteria)
            if parsed is None:
                return VerifierResult("rubric", False, 0.0, checks=executed,
                                      infra_error="the judge's answer was not the JSON asked for")
            judged = parsed
        for index, check in enumerate(judged):
            check.requirement = requirement_for(self.spec, index)
        return _scored("rubric", judged + executed, self.spec.pass_threshold)

    def _execute(self) -> list[Check]:
        """Each command as a requirement checked by execution, on a scratch copy of the workspace.

        A command is public when each of its ``&&``-joined steps is a line the request itself gives (the
        build commands of an AgencyBench "Run:" block): the agent may then hear what running it shows.
        """
        if self.spec.commands and self.sandbox is None:
            raise ValueError("a rubric verifier with commands needs a sandbox to run them in")
        checks = []
        offset = len(self.spec.criteria)
        for index, command in enumerate(self.spec.commands):
            res = self.sandbox.run(command, timeout_s=self.spec.timeout_s, scratch=True)
            check = command_check(self.spec, offset + index, command, res, self.query)
            check.public = all(is_public_command(step, self.query) for step in command.split(" && "))
            check.method = "execution"
            checks.append(check)
        return checks


def parse_rubric_answer(text: str, criteria: list[str]) -> list[Check] | None:
    """Read the judge's JSON (tolerating prose around it); None when it cannot be read.

    Each criterion becomes a ``judge`` check whose output is the judge's reason, on one line; a criterion
    the answer leaves out is not met ("not scored").
    """
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        scores = json.loads(text[start:end + 1]).get("scores")
    except (json.JSONDecodeError, AttributeError):
        return None
    if not isinstance(scores, list):
        return None
    by_index = {}
    for item in scores:
        if isinstance(item, dict) and isinstance(item.get("criterion"), int):
            by_index[item["criterion"]] = item
    checks = []
    for i, criterion in enumerate(criteria, 1):
        item = by_index.get(i, {})
        reason = " ".join(str(item.get("rationale", "not scored")).split())[:300]
        checks.append(Check(criterion, item.get("met") is True, reason, method="judge"))
    return checks


def make_verifier(spec: VerifierSpec, sandbox, *, judge=None, query: str = "",
                  evidence_tokens: int = 6000) -> Verifier:
    """The verifier a spec asks for; a judge (rubric, judged patch comparison) is shown ``evidence_tokens`` of
    evidence at most."""
    if spec.kind == "tests":
        return TestsVerifier(spec, sandbox, query)
    if spec.kind == "reference_patch":
        if spec.comparison == "judge" and judge is None:
            raise ValueError("a reference patch compared by the judge needs a judge model (params: llm.roles.judge)")
        return ReferencePatchVerifier(spec, sandbox, query=query, judge=judge, evidence_tokens=evidence_tokens)
    if judge is None:
        raise ValueError("a rubric verifier needs a judge model (params: llm.roles.judge)")
    return RubricVerifier(spec, judge, query, sandbox=sandbox, evidence_tokens=evidence_tokens)


def unified_diff(before: dict[str, str], after: dict[str, str]) -> str:
    """A unified diff between two {path: text} snapshots (for reports and the replay teacher)."""
    out = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a == b:
            continue
        out.extend(difflib.unified_diff((a or "").splitlines(True), (b or "").splitlines(True),
                                        "/dev/null" if a is None else f"a/{name}",
                                        "/dev/null" if b is None else f"b/{name}"))
    return "".join(out)
