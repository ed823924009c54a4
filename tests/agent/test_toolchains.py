"""The compilers and the browser that requirements checked by execution use work inside the sandbox: a tiny
C++17 program and a tiny Java program compile and run, and headless Chromium renders a local page."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.agent.sandbox.bwrap import BwrapSandbox
from pipelines.evaluation.suites.execution import BROWSER_CANDIDATES, page_check

pytestmark = pytest.mark.needs_bwrap


def require(found: bool, what: str) -> None:
    """Fail, never skip, when a toolchain these requirements need is missing: `make setup` installs it."""
    assert found, f"{what} is not installed; `make setup` installs it (Debian: apt-get install {what})"


def test_cpp17_compiles_and_runs_in_the_sandbox(workspace):
    require(shutil.which("g++") is not None, "g++")
    (workspace / "main.cpp").write_text('#include <iostream>\n#include <optional>\n'
                                        'int main() { std::optional<int> x = 42; std::cout << "cpp " << *x << "\\n"; }\n')
    res = BwrapSandbox(workspace, timeout_s=120).run("g++ -std=c++17 -o main main.cpp && ./main", scratch=True)
    assert res.exit_code == 0 and "cpp 42" in res.output, res.output


def test_java_compiles_and_runs_in_the_sandbox(workspace):
    require(shutil.which("javac") is not None, "default-jdk-headless")
    (workspace / "Main.java").write_text('public class Main { public static void main(String[] a) '
                                         '{ System.out.println("java " + (40 + 2)); } }\n')
    res = BwrapSandbox(workspace, timeout_s=120).run("javac -d bin Main.java && java -cp bin Main", scratch=True)
    assert res.exit_code == 0 and "java 42" in res.output, res.output


def test_headless_chromium_opens_a_page_and_catches_script_errors(workspace):
    require(any(Path(p).exists() for p in BROWSER_CANDIDATES), "chromium")
    (workspace / "index.html").write_text('<html><body><div id="x"></div><script src="app.js"></script></body></html>')
    (workspace / "app.js").write_text('document.getElementById("x").textContent = "rendered " + (2 + 3);')
    sandbox = BwrapSandbox(workspace, timeout_s=120)
    check = page_check("index.html")
    res = sandbox.run(check.command, scratch=True)
    assert res.exit_code == 0 and "rendered 5" in res.output, res.output
    (workspace / "app.js").write_text("undefinedFunction();")
    res = sandbox.run(check.command, scratch=True)
    assert res.exit_code == 1 and "script errors" in res.output, res.output
