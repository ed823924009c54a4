"""Which verifier a PR task gets, and why: its own tests when some fail before the PR and pass after it (as
SWE-bench builds a task), else the judge's comparison of the agent's diff with the gold patch.

    choice = choose_verifier(pr, params.pr_queries, root)
    choice.spec      # VerifierSpec(kind="tests", fail_to_pass=[...], ...) or kind="reference_patch", comparison="judge"
    choice.reason    # "PR changes tests: 3 FAIL_TO_PASS, 5 PASS_TO_PASS" / "no test file changed" / ...

**What a test file is** (:func:`is_test_file`): a file under a folder named ``tests``, ``test`` or
``testing`` at any depth, or a file named ``test_*.py``, ``*_test.py`` or ``conftest.py`` anywhere. The PR's
patch splits into the test part (those files) and the code part (every other file): the code part is the
task's gold solution, the test part its hidden tests.

**How the tests are found** for a PR whose patch has both parts and changes a test module (``test_*.py``
or ``*_test.py``): the repository is laid out at the base commit; its declared dependencies and pytest go
into a cached virtual environment (:mod:`pipelines.agent.pyenv`, mounted read-only in the sandbox); the
changed test modules run in the sandbox twice, on scratch copies of the base: with the test part applied
(before) and with the whole patch applied (after, the PR's head as it merged). FAIL_TO_PASS are the tests
that pass after and failed (or did not exist, or could not be imported) before; PASS_TO_PASS those that
passed both times. Both lists, the test part and the environment's packages go into the spec, hidden from
the agent; its public sentences say only that the requested behaviour works and that what worked still
does. With no FAIL_TO_PASS test the task keeps the gold-patch comparison, judged by the judge model.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pipelines.agent.hidden_tests import (FAIL_TO_PASS_REQUIREMENT, PASS_TO_PASS_REQUIREMENT, PATCH_FAILED,
                                          hidden_tests_command, parse_outcomes)
from pipelines.agent.pyenv import EnvError, ensure_env, env_sandbox_options, environment_packages
from pipelines.agent.sandbox.factory import make_sandbox
from pipelines.agent.workspace import lay_out_commit
from pipelines.core.errors import UserError
from pipelines.core.schema import PythonEnv, VerifierSpec
from pipelines.prs.config import PRQueriesParams
from pipelines.prs.records import FileChange, PullRequest, unified_diff

log = logging.getLogger(__name__)
TEST_DIRS = frozenset({"tests", "test", "testing"})
DISCOVERY_OUTPUT_BYTES = 4_000_000  # every test's outcome is read from the report: never cut it


def is_test_file(path: str) -> bool:
    """Whether ``path`` is a test file: under a ``tests``/``test``/``testing`` folder, or named ``test_*.py``,
    ``*_test.py`` or ``conftest.py``."""
    parts = PurePosixPath(path).parts
    name = parts[-1] if parts else ""
    return (any(part in TEST_DIRS for part in parts[:-1]) or name == "conftest.py"
            or (name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))))


def is_test_module(path: str) -> bool:
    """Whether pytest collects ``path`` by default (``test_*.py`` or ``*_test.py``)."""
    name = PurePosixPath(path).name
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def split_files(files: list[FileChange]) -> tuple[list[FileChange], list[FileChange]]:
    """(code part, test part) of a PR's files; a rename counts as a test file when either name is one."""
    tests = [f for f in files if is_test_file(f.path) or (f.previous_path and is_test_file(f.previous_path))]
    return [f for f in files if f not in tests], tests


class PatchDoesNotApply(UserError):
    """The PR's own patch does not apply at its base commit (a record that does not match its repository)."""


@dataclass
class VerifierChoice:
    """The verifier a PR task gets, why (a sentence for provenance and the report), and run-dependent figures
    (seconds spent building the environment and running the tests) for MLflow."""

    spec: VerifierSpec
    reason: str
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def by_tests(self) -> bool:
        return self.spec.kind == "tests"


def judged_spec(pr: PullRequest, params: PRQueriesParams) -> VerifierSpec:
    """The judged comparison of the agent's diff with the whole gold patch."""
    return VerifierSpec(kind="reference_patch", comparison="judge", patch=unified_diff(pr.files),
                        pass_threshold=params.judge.pass_threshold)


def choose_verifier(pr: PullRequest, params: PRQueriesParams, root: Path) -> VerifierChoice:
    """The PR's tests as its verifier when one of them fails before and passes after, else the judged
    comparison (see the module docstring); the reason says which and why.

    Raises UserError when the environment cannot be built and ``tests.on_env_error`` is ``fail``, and
    PatchDoesNotApply when the PR's own patch does not apply at its base commit.
    """
    judged = lambda reason, seconds=None: VerifierChoice(judged_spec(pr, params), reason, seconds or {})  # noqa: E731
    if not params.tests.enabled:
        return judged("tests not run (pr_queries.tests.enabled is false)")
    text_files = [f for f in pr.files if not f.binary and f.patch is not None]
    code, tests = split_files(text_files)
    if not tests:
        return judged("no FAIL_TO_PASS test: no test file changed")
    if not code:
        return judged("no FAIL_TO_PASS test: the PR changes only tests")
    modules = sorted(f.path for f in tests if f.status != "deleted" and is_test_module(f.path))
    if not modules:
        return judged("no FAIL_TO_PASS test: no test module (test_*.py, *_test.py) changed")
    with tempfile.TemporaryDirectory(prefix="limi-pr-tests-") as tmp:
        base = Path(tmp) / "base"
        lay_out_commit(git_source(pr, root), pr.base_sha, base, root)
        return _run_tests(pr, params, base, unified_diff(code), unified_diff(tests), modules, judged)


def is_local(pr: PullRequest, root: Path) -> bool:
    """Whether the PR's repository is a path on this machine (a clone or a bundle, relative to ``root``)."""
    return not pr.repo.startswith(("http", "git@")) and (root / pr.repo).exists()


def git_source(pr: PullRequest, root: Path) -> str:
    """Where the PR's repository is fetched from: a local path (a clone or a bundle), a URL, or its GitHub URL."""
    if is_local(pr, root) or "://" in pr.repo or pr.repo.startswith("git@"):
        return pr.repo
    return f"https://github.com/{pr.repo}.git"


def _run_tests(pr: PullRequest, params: PRQueriesParams, base: Path, code_patch: str, test_patch: str,
               modules: list[str], judged) -> VerifierChoice:
    settings = params.tests
    started = time.monotonic()
    env = PythonEnv(packages=environment_packages(base, settings.pytest))
    try:
        env_path = ensure_env(env)
    except EnvError as exc:
        if settings.on_env_error == "fail":
            raise UserError(f"{pr.key}: the task environment cannot be built: {exc}. Check access to the package "
                            "index, or set pr_queries.tests.on_env_error: judge to verify such PRs by the judged "
                            "comparison") from None
        log.warning("%s: environment not built (%s); verified by the judged comparison", pr.key, exc)
        return judged("no FAIL_TO_PASS test: the environment could not be built")
    env_s = time.monotonic() - started
    sandbox = make_sandbox(settings.sandbox, base, timeout_s=settings.timeout_s, memory_mb=settings.memory_mb,
                           max_output_bytes=DISCOVERY_OUTPUT_BYTES, **env_sandbox_options(env_path, settings.sandbox))
    started = time.monotonic()
    before = sandbox.run(hidden_tests_command(test_patch, modules, report="all"), scratch=True)
    after = sandbox.run(hidden_tests_command(test_patch, modules, code_patch=code_patch, report="all"), scratch=True)
    seconds = {"env_s": env_s, "tests_s": time.monotonic() - started}
    if after.exit_code == PATCH_FAILED or before.exit_code == PATCH_FAILED:
        raise PatchDoesNotApply(f"{pr.key}: its patch does not apply at its base commit {pr.base_sha[:12]}")
    if after.timed_out or after.exit_code not in (0, 1):
        why = "timed out" if after.timed_out else f"pytest exited with status {after.exit_code}"
        return judged(f"no FAIL_TO_PASS test: the PR's tests do not run after it ({why})", seconds)
    passed_after = {t for t, outcome in parse_outcomes(after.output).items() if outcome == "passed" and "::" in t}
    passed_before = {t for t, outcome in parse_outcomes(before.output).items() if outcome == "passed"}
    fail_to_pass = sorted(passed_after - passed_before)
    pass_to_pass = sorted(passed_after & passed_before)
    if not fail_to_pass:
        return judged("no FAIL_TO_PASS test: none of the PR's tests fails before it and passes after it", seconds)
    spec = VerifierSpec(kind="tests", patch=code_patch, test_patch=test_patch, fail_to_pass=fail_to_pass,
                        pass_to_pass=pass_to_pass, env=env, timeout_s=settings.timeout_s,
                        requirements=[FAIL_TO_PASS_REQUIREMENT] + ([PASS_TO_PASS_REQUIREMENT] if pass_to_pass else []))
    return VerifierChoice(spec, f"PR changes tests: {len(fail_to_pass)} FAIL_TO_PASS, {len(pass_to_pass)} PASS_TO_PASS",
                          seconds)

