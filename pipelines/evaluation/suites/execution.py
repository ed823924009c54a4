"""Requirements a suite checks by execution: what a subtask states about building or opening its program,
turned into commands run in the sandbox (on a scratch copy of the workspace, passing on exit status 0).

    checks = execution_requirements(subtask_text, page="index.html")
    # [ExecutionCheck(command="cd workspace && make task1",
    #                 requirement="The project builds with the command the subtask gives (`make task1`).")]

- A "Run:" block (AgencyBench's C++ and Java tasks: ``cd workspace`` / ``make task1`` / ``./bin/chat_app``)
  gives a build requirement: its ``cd`` and build lines (make, cmake, ninja, g++/gcc/clang, javac, mvn,
  gradle, go build, cargo build...) joined with ``&&``, in the order written. The launch of the program
  is not run: these are interactive console programs that wait for a person's input, and with input
  closed a correct one may still stop with an error (Java's ``Scanner.nextLine`` throws at end of input)
  or keep waiting, so "it starts" cannot be told apart from "it is broken" by its exit status; whether
  it then behaves as asked is the judge's to decide from the code and the build output.
- An HTML front-end task (its text names an ``.html`` page and speaks of HTML) gives a page requirement
  for every subtask from the one naming the page on: the page opens in headless Chromium without an
  uncaught script error. The browser binary is called directly (``/usr/lib/chromium/chromium``): Debian's
  ``/usr/bin/chromium`` wrapper sources ``/etc/chromium.d``, which the sandbox does not mount (it holds
  API keys), and the browser needs nothing else of ``/etc`` to load a local page.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

_RUN_MARKER = re.compile(r"^[ \t]*Run[ \t]*:[ \t]*(.*)$", re.I)
# the end of a Run block: a blank line or the next "Heading:" line ("Success Criteria:")
_HEADING = re.compile(r"^[ \t]*[A-Za-z][A-Za-z ]{2,40}:([ \t]|$)")
#: first words of a build line
BUILD_TOOLS = frozenset({"make", "gmake", "cmake", "ninja", "g++", "gcc", "c++", "cc", "clang", "clang++",
                         "javac", "mvn", "gradle", "gradlew", "./gradlew", "ant", "tsc"})
#: first two words of a build line whose tool also runs programs
BUILD_SUBCOMMANDS = frozenset({("go", "build"), ("cargo", "build"), ("dotnet", "build"), ("npm", "run")})
_PAGE = re.compile(r"(?<![\w/.-])([\w-]+\.html)\b", re.I)
_HTML_WORD = re.compile(r"\bHTML\b")
BROWSER_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/lib/chromium-browser/chromium-browser")
PAGE_TIMEOUT_S = 45


@dataclass(frozen=True)
class ExecutionCheck:
    """One requirement checked by execution: the command the verifier runs and its public sentence."""

    command: str
    requirement: str


def run_block(text: str) -> list[str]:
    """The command lines of the first "Run:" block of ``text`` (comments and blank lines dropped)."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        marker = _RUN_MARKER.match(line)
        if not marker:
            continue
        found = [marker.group(1).strip()] if marker.group(1).strip() else []
        for follow in lines[index + 1:]:
            if not follow.strip() or _HEADING.match(follow):
                break
            found.append(follow.strip())
        return [line for line in found if not line.startswith("#")]
    return []


def is_build_line(line: str) -> bool:
    """Whether a Run line builds the program (rather than changing folder or launching it)."""
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    if not words:
        return False
    first = words[0] if words[0].startswith("./") else words[0].rsplit("/", 1)[-1]
    return first in BUILD_TOOLS or tuple(words[:2]) in BUILD_SUBCOMMANDS


def build_check(text: str) -> ExecutionCheck | None:
    """The build requirement of a subtask's "Run:" block, or None when it gives no build line."""
    lines = run_block(text)
    builds = [line for line in lines if is_build_line(line)]
    if not builds:
        return None
    last = max(i for i, line in enumerate(lines) if line in builds)
    steps = [line for line in lines[:last + 1] if line in builds or line.split()[:1] == ["cd"]]
    plural = "s" if len(builds) > 1 else ""
    shown = " then ".join(f"`{line}`" for line in builds)
    return ExecutionCheck(" && ".join(steps), f"The project builds with the command{plural} the subtask gives ({shown}).")


def named_page(text: str) -> str | None:
    """The first ``.html`` page an HTML front-end task's text names, or None."""
    if not _HTML_WORD.search(text):
        return None
    match = _PAGE.search(text)
    return match.group(1) if match else None


def page_check(page: str) -> ExecutionCheck:
    """Open ``page`` (at the workspace root, else the first such file under it) in headless Chromium; pass
    when the browser renders it and logs no uncaught script error."""
    quoted = shlex.quote(page)
    candidates = " ".join(BROWSER_CANDIDATES)
    script = "\n".join([
        f"page={quoted}",
        f'[ -f "$page" ] || page=$(find . -path ./.git -prune -o -type f -name {quoted} -print | sort | head -n 1)',
        f'[ -n "$page" ] || {{ echo "{page}: not found in the workspace"; exit 1; }}',
        'browser=""',
        f'for candidate in {candidates}; do [ -x "$candidate" ] && browser=$candidate && break; done',
        '[ -n "$browser" ] || { echo "no headless Chromium installed here"; exit 2; }',
        f'out=$(timeout {PAGE_TIMEOUT_S} "$browser" --headless --no-sandbox --disable-gpu '
        '--disable-background-networking --disable-component-update --no-first-run '
        '--user-data-dir="$(mktemp -d)" --virtual-time-budget=3000 --enable-logging=stderr --v=0 '
        '--dump-dom "$page" 2>&1)',
        "status=$?",
        "printf '%s\\n' \"$out\" | grep 'CONSOLE' | tail -n 20",
        "printf '%s\\n' \"$out\" | grep -v '^\\[[0-9]' | head -c 1500; echo",
        '[ "$status" -eq 0 ] || { echo "the browser exited with status $status"; exit 1; }',
        "if printf '%s' \"$out\" | grep -q 'Uncaught'; then echo \"the page has script errors\"; exit 1; fi",
        "printf '%s' \"$out\" | grep -qi '<body' || { echo \"the page did not render\"; exit 1; }",
    ])
    return ExecutionCheck(script, f"The page {page} opens in a browser without script errors.")


def execution_requirements(text: str, *, page: str | None = None) -> list[ExecutionCheck]:
    """The requirements of one subtask's ``text`` checked by execution: its build, else its page."""
    build = build_check(text)
    if build is not None:
        return [build]
    return [page_check(page)] if page else []
