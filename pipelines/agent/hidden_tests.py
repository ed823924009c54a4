"""A PR's hidden tests in the sandbox: the command that lays them over a workspace and runs them, and how
pytest's report is read.

    command = hidden_tests_command(test_patch, ["tests/test_slug.py::test_drops_punctuation"])
    result = sandbox.run(command, scratch=True)      # always on a scratch copy: the agent's files stay as they are
    outcomes = parse_outcomes(result.output)         # {"tests/test_slug.py::test_drops_punctuation": "passed"}
    # a test passes only with a PASSED line of its own: failed, skipped, not collected, not run all count as not

The command, run in the workspace (or a scratch copy of it): every file the test patch touches is put back
as the base commit has it (checked out from ``HEAD``, or removed when the base lacks it), so whatever the
agent did to those files cannot stop the patch from applying, as SWE-bench's harness does; then the patches
arrive base64-encoded inside the command (no host process writes into a folder the agent controls) and
``git apply`` lays them on; then pytest (the task environment's ``python3``, first on ``PATH``) runs the
test files of the given tests with a short report, the working directory and ``src/`` at the end of
``sys.path`` (see :data:`PYTEST`). The command prints nothing of the patches.
"""

from __future__ import annotations

import base64
import re
import shlex

#: the public sentences of a PR task's two test groups: no test name, no expected value
FAIL_TO_PASS_REQUIREMENT = "The change makes the behaviour the request describes work."
PASS_TO_PASS_REQUIREMENT = "Behaviour that worked before the change still works."
PATCH_FAILED = 97  # the command's exit status when a patch does not apply to the workspace
#: git as the host's other commands in an agent's workspace run it: no hooks, no fsmonitor, no line-ending rewrites
GIT = "git -c core.hooksPath=/dev/null -c core.fsmonitor=false -c core.autocrlf=false"
# pytest with the working directory (and src/) last on sys.path, not first as ``python3 -m`` puts it: the
# repository's code imports as usual, but a module the agent leaves in the workspace (json.py) cannot stand in
# for one pytest itself imports; a test module that cannot be imported fails its own tests, not the whole run
PYTEST = ("python3 -B -c 'import sys; sys.path[:] = [p for p in sys.path if p not in (\"\", \".\")] + [\".\", \"src\"]; "
          "import pytest; sys.exit(pytest.main())' -p no:cacheprovider -q --tb=no --color=no "
          "--continue-on-collection-errors")
_OUTCOME = re.compile(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS) (.+?)(?: - .*)?$")
_PATH_LINES = (re.compile(r"^--- a/(.+)$"), re.compile(r"^\+\+\+ b/(.+)$"), re.compile(r"^rename from (.+)$"),
               re.compile(r"^rename to (.+)$"))


def patch_paths(patch: str) -> list[str]:
    """The paths a unified diff touches (old and new names alike), sorted."""
    found = set()
    for line in patch.splitlines():
        for pattern in _PATH_LINES:
            match = pattern.match(line)
            if match:
                found.add(match.group(1).split("\t")[0])
    return sorted(found)


def _apply(patch: str) -> str:
    """Shell lines that apply ``patch`` in the current directory, exiting with :data:`PATCH_FAILED` if it fails."""
    encoded = base64.b64encode(patch.encode("utf-8")).decode("ascii")
    return (f"echo {encoded} | base64 -d | {GIT} apply --whitespace=nowarn - >/dev/null 2>&1 || "
            f"{{ echo 'a patch of the hidden tests does not apply to the workspace'; exit {PATCH_FAILED}; }}")


def hidden_tests_command(test_patch: str, tests: list[str], *, code_patch: str | None = None,
                         report: str = "listed") -> str:
    """The shell command that resets the files ``test_patch`` touches to the base, applies ``code_patch``
    (if any) and ``test_patch``, and runs the test files of ``tests`` (pytest node ids, or test files).

    ``report``: ``all`` prints pytest's outcome of every test in those files (for finding which tests fail
    and pass; the output can be long); ``listed`` prints only the outcome lines that concern ``tests`` (and
    their files' import errors), short enough that no output limit cuts it, whatever else the files hold.
    Whole files run rather than node ids: pytest refuses a node id in a file that cannot be imported, and
    would then run none of the others.
    """
    files = sorted({t.split("::")[0] for t in tests})
    lines = ["set -u"]
    for path in patch_paths(test_patch):
        quoted = shlex.quote(path)
        lines.append(f"if {GIT} cat-file -e HEAD:{quoted} 2>/dev/null; then {GIT} checkout -q HEAD -- {quoted}; "
                     f"else rm -rf -- {quoted}; fi")
    if code_patch:
        lines.append(_apply(code_patch))
    lines.append(_apply(test_patch))
    run = f"{PYTEST} -rA -- " + " ".join(shlex.quote(f) for f in files)
    if report == "all":
        lines.append(run)
        return "\n".join(lines)
    # fixed strings that pick the lines about the listed tests (a superset: a prefix of a longer id matches too)
    wanted = "".join(f"{t}\n" for t in tests) + "".join(f"ERROR {f}\n" for f in files)
    encoded = base64.b64encode(wanted.encode("utf-8")).decode("ascii")
    lines += ['report=$(mktemp) && wanted=$(mktemp) || exit 98', f'echo {encoded} | base64 -d > "$wanted"',
              f'{run} > "$report" 2>&1; status=$?',
              'grep -E "^(PASSED|FAILED|ERROR|XFAIL|XPASS) " "$report" | grep -F -f "$wanted"',
              'rm -f -- "$report" "$wanted"', 'exit $status']
    return "\n".join(lines)


def parse_outcomes(output: str) -> dict[str, str]:
    """Test id -> ``passed``/``failed``/``error``/``xfail``/``xpass`` from pytest's short summary (``-rA``).

    A collection error names a file (``tests/test_x.py``) rather than a test. A skipped test has no line.
    """
    outcomes: dict[str, str] = {}
    for line in output.splitlines():
        match = _OUTCOME.match(line.rstrip())
        if match:
            outcomes[match.group(2).strip()] = match.group(1).lower()
    return outcomes
