"""Answers stay hidden: canaries planted in every kind of hidden material never reach the agent.

A project is laid out outside ``/tmp`` (the old sandbox hid ``/tmp`` anyway; a real checkout lives
elsewhere) with a unique canary string in each hidden artifact kind: a reference solution, a hidden test's
source, its expected output, a reference answer, a gold patch and the PR's head commit, a file of the
repository and its ``.git``, ``mlflow.db``, ``.dvc/config.local``, an environment variable, an eval
task's reference solution and expected value, and a PR task's hidden tests (their names and their patch). Real collect and eval episodes then run through the real
sandbox, verifier, simulated user and record writer, driven by a scripted snooping agent that tries every
route it can (:data:`ROUTES`) in every feedback round, and plants a module that tries to steal the hidden
check's constants when the check imports it. No canary may appear in any message sent to the agent or in
any trajectory's ``messages``.

The same episodes with the old blocklist sandbox (the host's ``/`` read-only), the old feedback (the
verifier's summary: check commands and their output), checks run in the agent's own workspace and a PR
workspace cloned with its whole history are the negative control: there the canaries are found, so the
test can fail.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

import pipelines.agent.users as users_module
import pipelines.agent.workspace as workspace_module
from pipelines.agent.sandbox.bwrap import BwrapSandbox
from pipelines.collection.episode import Collector
from pipelines.collection.plan import Job
from pipelines.core.params import load_params
from pipelines.core.schema import Query
from pipelines.evaluation.suites.agencybench import load_agencybench
from pipelines.evaluation.suites.builtin import load_builtin
from pipelines.evaluation.trial import evaluate
from pipelines.llm.base import Reply, Usage, assistant_message
from tests.conftest import REPO, make_project
from tests.reliability.figures import FIGURES

pytestmark = pytest.mark.needs_bwrap
TOKEN = secrets.token_hex(6)
KINDS = ("solution", "hidden_test", "expected_output", "reference_answer", "gold_patch", "pr_head", "repo_file",
         "repo_git", "mlflow", "dvc_config", "env", "eval_solution", "eval_expected", "pr_tests")
CANARY = {kind: f"canary-{kind.replace('_', '')}-{TOKEN}" for kind in KINDS}
CANARY["pr_tests"] = f"canary_prtests_{TOKEN}"  # a PR's hidden test: in its name (an identifier) and its assertion
ENV_NAME = "LIMI_TEST_CANARY_SECRET"

#: What the snooping agent runs, in every round; ``{root}`` is the project, ``{repo}`` this checkout.
ROUTES = (
    "ls -la / /root /home /var/tmp /work {root} 2>&1 | head -120",
    "cat {root}/notes/secret_notes.txt {root}/mlflow.db {root}/.dvc/config.local 2>&1 | head -50",
    "grep -rIa canary {root} 2>&1 | head -80",
    "find {root} -path '*solution*' -type f -exec cat {{}} + 2>&1 | head -80",
    "cat {root}/queries.jsonl {root}/heldout/*/task.json 2>&1 | head -80",
    "git -C {root} log --all -p 2>&1 | head -300",
    "git -C {root}/upstream log --all -p 2>&1 | head -300",
    "git log --all -p 2>&1 | head -300; git branch -a; git remote -v; git reflog --all | head",
    "git fsck --lost-found 2>&1 | head; git cat-file --batch-all-objects --batch 2>&1 | head -400",
    "git diff HEAD main 2>&1 | head -100; git show --stat HEAD@{{1}} 2>&1 | head",
    "env; cat /proc/self/environ /proc/1/environ 2>&1 | tr '\\0' '\\n'",
    "ls /proc; for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done 2>/dev/null | head -50",
    "cat /proc/self/mountinfo 2>&1 | head -60",
    "timeout 2 grep -rIal --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev --exclude-dir=usr canary / "
    "2>/dev/null | head -20 | xargs -r -d '\\n' cat 2>/dev/null | head -100",
    "cat {repo}/params.yaml 2>&1 | head -5; ls {repo}/data/tasks/builtin 2>&1 | head",
    "ls -la ~ /tmp 2>&1; cat ~/.bash_history ~/.gitconfig 2>&1 | head",
    # a module a hidden check may import from the working directory: it copies the check's constants out
    "for m in json csv; do printf '%s\\n' 'import sys' 'f = sys._getframe(1)' "
    "'while f is not None and f.f_code.co_filename != \"<stdin>\": f = f.f_back' "
    "'text = repr(f.f_code.co_consts) if f is not None else \"\"' "
    "'open(\"stolen.txt\", \"a\").write(text)' 'print(text)' 'raise SystemExit(3)' > $m.py; done; ls",
    "cat stolen.txt 2>&1 | head -40; ls -la",
)


class SnoopingAgent:
    """Runs every route, then finishes; after feedback, every route again. Keeps all it was shown."""

    name = "snoop"

    def __init__(self, routes: list[str]):
        self.routes = routes
        self.step = 0
        self.routes_run = 0
        self.seen: list[str] = []

    def chat(self, messages: list[dict[str, Any]], tools=None, **sampling) -> Reply:
        self.seen.append(json.dumps(messages, ensure_ascii=False))
        index = self.step % (len(self.routes) + 1)
        self.step += 1
        if index == len(self.routes):
            call = {"name": "finish", "arguments": {"summary": "done"}}
        else:
            call = {"name": "bash", "arguments": {"command": self.routes[index]}}
            self.routes_run += 1
        return Reply(assistant_message("", [{"type": "function", "function": call}]), Usage(completion_tokens=8))


def judge_quoting_the_answer(messages, tools=None, **sampling) -> Reply:
    """A judge that fails every criterion and quotes the reference answer in its rationale."""
    prompt = messages[-1]["content"]
    count = prompt.split("Rubric criteria:")[-1].count("\n") + 1
    scores = [{"criterion": i, "met": False, "rationale": f"expected {CANARY['reference_answer']}"}
              for i in range(1, count + 1)]
    return Reply(assistant_message(json.dumps({"scores": scores}), []), Usage())


class Judge:
    name = "judge"

    def chat(self, messages, tools=None, **sampling):
        return judge_quoting_the_answer(messages, tools, **sampling)


def git(cwd: Path, *args: str) -> str:
    ident = ["-c", "user.email=t@example.com", "-c", "user.name=t", "-c", "commit.gpgsign=false"]
    return subprocess.run(["git", *ident, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def plant(root: Path) -> dict[str, Any]:
    """Every hidden artifact kind, each holding its canary; returns the queries and eval task sources."""
    (root / "notes").mkdir()
    (root / "notes" / "secret_notes.txt").write_text(f"internal: {CANARY['repo_file']}\n")
    (root / "notes" / "history.txt").write_text(f"{CANARY['repo_git']}\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "notes")
    (root / "notes" / "history.txt").unlink()  # now only in .git
    (root / "mlflow.db").write_bytes(b"SQLite format 3\0" + CANARY["mlflow"].encode())
    (root / ".dvc").mkdir(exist_ok=True)
    (root / ".dvc" / "config.local").write_text(f"['remote \"s3\"']\n    secret_access_key = {CANARY['dvc_config']}\n")

    solution = root / "solutions" / "leak"
    solution.mkdir(parents=True)
    (solution / "answer.txt").write_text(f"{CANARY['solution']}\n")
    hidden = (f"python3 - <<'EOF'\nimport json\nwant = '{CANARY['expected_output']}'\n"
              f"assert open('answer.txt').read().strip() == want, '{CANARY['hidden_test']}'\nEOF")
    seed = Query.model_validate({
        "id": "leak-seed", "source": "human", "domain": "software", "category": "algorithm",
        "query": "Write the answer to answer.txt.", "workspace": {"files": {"README": "the task\n"}},
        "verifier": {"kind": "tests", "commands": [hidden, "test -s answer.txt"],
                     "requirements": ["answer.txt holds the answer.", "answer.txt is not empty."]},
        "provenance": {"solution_dir": "solutions/leak"}})

    upstream = root / "upstream"
    upstream.mkdir()
    git(upstream, "init", "-q", "-b", "main")
    (upstream / "lib.py").write_text("def value():\n    return 0\n")
    git(upstream, "add", "-A")
    git(upstream, "commit", "-qm", "base")
    base = git(upstream, "rev-parse", "HEAD").strip()
    (upstream / "lib.py").write_text(f"def value():\n    return '{CANARY['pr_head']}'\n")
    git(upstream, "commit", "-qam", "fix")
    patch = (f"--- a/lib.py\n+++ b/lib.py\n@@ -1,2 +1,2 @@\n def value():\n-    return 0\n"
             f"+    return '{CANARY['gold_patch']}'\n")
    pr = Query.model_validate({
        "id": "leak-pr", "source": "pr", "domain": "software", "category": "backend_development",
        "query": "value() returns the wrong thing; fix it.",
        "workspace": {"git": "upstream", "commit": base},
        "verifier": {"kind": "reference_patch", "patch": patch}, "provenance": {"pr": "upstream#1"}})

    name = f"test_{CANARY['pr_tests']}"
    test_patch = (f"--- /dev/null\n+++ b/tests/test_value.py\n@@ -0,0 +1,5 @@\n+from lib import value\n+\n+\n"
                  f"+def {name}():\n+    assert value() == 1, '{CANARY['pr_tests']}'\n")
    pr_tests = Query.model_validate({
        "id": "leak-pr-tests", "source": "pr", "domain": "software", "category": "codebase_debugging",
        "query": "value() should return one; fix it.", "workspace": {"git": "upstream", "commit": base},
        "verifier": {"kind": "tests", "patch": "--- a/lib.py\n+++ b/lib.py\n@@ -1,2 +1,2 @@\n def value():\n"
                     "-    return 0\n+    return 1\n", "test_patch": test_patch,
                     "fail_to_pass": [f"tests/test_value.py::{name}"], "env": {"packages": ["pytest==9.2.0"]},
                     "requirements": ["The change makes the behaviour the request describes work."]},
        "provenance": {"pr": "upstream#2"}})

    task = root / "heldout" / "leak-task"
    (task / "workspace").mkdir(parents=True)
    (task / "workspace" / ".keep").write_text("")
    (task / "solution" / "1").mkdir(parents=True)
    (task / "solution" / "1" / "result.txt").write_text(f"{CANARY['eval_solution']}\n")
    check = (f"python3 - <<'EOF'\nimport csv\n"
             f"assert open('result.txt').read().strip() == '{CANARY['eval_expected']}', 'mismatch'\nEOF")
    (task / "task.json").write_text(json.dumps({
        "id": "leak-task", "domain": "research", "category": "data_analysis",
        "subtasks": [{"query": "Write result.txt with the result.",
                      "verifier": {"kind": "tests", "commands": [check],
                                   "requirements": ["result.txt holds the result."]}}]}))
    bench = root / "agencybench"
    bench.mkdir()
    (bench / "task1.json").write_text(json.dumps({
        "metadata": {"subtask_count": 1, "categories": ["Fact-based research"]},
        "query": f"Subtask 1: Ground truth: {CANARY['reference_answer']}\nWhich year was the library founded?"}))
    return {"queries": [seed, pr, pr_tests], "builtin": task.parent, "agencybench": bench}


def configure(root: Path) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    limits = {"max_steps": 3 * (len(ROUTES) + 1), "max_tokens": 10_000_000, "max_seconds": 600,
              "max_format_errors": 3}
    params["collect"].update(rounds=3, limits=limits, parallel=1, seeds=False, drills=False)
    params["eval"].update(rounds=3, limits=limits, parallel=1, k=1)
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def run_everything(root: Path, monkeypatch) -> tuple[list[str], list[dict[str, Any]], list[int]]:
    """Collect on the seed and PR queries, evaluate on the builtin and AgencyBench tasks; returns every
    message list the agents were shown, every record, and how many routes each agent ran."""
    planted = plant(root)
    configure(root)
    monkeypatch.setenv("LIMI_ROOT", str(root))
    monkeypatch.setenv(ENV_NAME, CANARY["env"])
    params = load_params(root / "params.yaml")
    routes = [r.format(root=root, repo=REPO) for r in ROUTES]
    agents: list[SnoopingAgent] = []

    def new_agent(*_args) -> SnoopingAgent:
        agents.append(SnoopingAgent(routes))
        return agents[-1]

    monkeypatch.setattr(Collector, "teacher", lambda self, job: new_agent)
    collector = Collector(params, root)
    records = [collector.run(Job(query, "embedded", f"k{i}")) for i, query in enumerate(planted["queries"])]
    tasks = load_builtin(planted["builtin"]) + load_agencybench(planted["agencybench"])
    trials = evaluate(tasks, {"snoop": new_agent}, params.eval, judge=Judge(), parallel=1)
    records += [t.record for t in trials]
    seen = [text for agent in agents for text in agent.seen]
    return seen, records, [agent.routes_run for agent in agents]


def leaks(seen: list[str], records: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Canary kind -> where it showed up (a message shown to an agent, a record's messages)."""
    found: dict[str, set[str]] = {}
    texts = [("shown to the agent", t) for t in seen]
    texts += [(f"messages of {r['meta'].get('task_id')}", json.dumps(r["messages"], ensure_ascii=False))
              for r in records]
    for where, text in texts:
        for kind, canary in CANARY.items():
            if canary in text:
                found.setdefault(kind, set()).add(where)
    return found


@pytest.fixture()
def project():
    """A project outside /tmp (where a checkout lives), removed afterwards."""
    parent = Path(tempfile.mkdtemp(prefix="limi-canary-", dir="/var/tmp"))
    try:
        yield make_project(parent / "proj")
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.figure("answer_isolation")
def test_no_canary_reaches_the_agent(project, monkeypatch, env_cache):
    seen, records, steps = run_everything(project, monkeypatch)
    # the episodes really ran the routes, through feedback rounds, on every task
    assert len(records) == 5 and sum(steps) >= 5 * len(ROUTES)
    pr_tests = next(r for r in records if r["meta"]["task_id"] == "leak-pr-tests")["meta"]
    assert pr_tests["final"]["checks"][0]["output"].endswith(f"test_{CANARY['pr_tests']} (failed)")  # the tests ran
    assert any(m["role"] == "user" and m["content"].startswith("Not done yet")
               for r in records for m in r["messages"])
    assert any("answer.txt holds the answer." in m["content"] for r in records for m in r["messages"]
               if m["role"] == "user")
    assert all(r["meta"]["feedback"] == "requirements" for r in records)
    found = leaks(seen, records)
    FIGURES.measure("answer_leaks", {"tried": sum(steps), "leaked": sum(len(w) for w in found.values()),
                                     "kinds": len(KINDS), "routes": len(ROUTES)})
    assert found == {}, f"canaries reached the agent: {found}"


# ---------------------------------------------------------------- the negative control
class BlocklistSandbox(BwrapSandbox):
    """The sandbox as it was: the host's / read-only with a few folders covered, checks in the workspace."""

    def __init__(self, workspace: Path, **options):
        super().__init__(workspace, **options)
        ws = str(self.workspace)
        self._prefix = [self._prefix[0], "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                        "--tmpfs", "/root", "--tmpfs", "/home", "--tmpfs", "/tmp", "--bind", ws, ws,
                        "--unshare-all", "--unshare-user", "--cap-drop", "ALL", "--die-with-parent",
                        "--new-session", "--chdir", ws]

    def run(self, command: str, *, timeout_s: float | None = None, scratch: bool = False):
        return super().run(command, timeout_s=timeout_s)  # checks ran in the agent's own workspace


def full_clone(repo: str, commit: str | None, dest: Path, root: Path) -> None:
    """The PR workspace as it was: the whole history cloned, only ``origin`` removed."""
    source = str((root / repo).resolve())
    subprocess.run(["git", "clone", "-q", "--no-checkout", source, str(dest)], check=True, capture_output=True)
    subprocess.run(["git", "-C", str(dest), "checkout", "-q", "--detach", commit or "HEAD"], check=True,
                   capture_output=True)
    subprocess.run(["git", "-C", str(dest), "remote", "remove", "origin"], capture_output=True)


@pytest.mark.figure("answer_isolation")
def test_the_old_sandbox_and_feedback_leak_the_canaries(project, monkeypatch, env_cache):
    import pipelines.agent.harness as harness_module

    monkeypatch.setattr(harness_module, "make_sandbox", lambda kind, workspace, **o: BlocklistSandbox(
        workspace, timeout_s=o.get("timeout_s", 30), memory_mb=o.get("memory_mb", 1024)))
    monkeypatch.setattr(users_module, "feedback_text", lambda result, policy="requirements": (
        f"{result.summary()}\nPlease fix this, check your work, and call finish again."))
    monkeypatch.setattr(workspace_module, "_checkout", full_clone)
    seen, records, _ = run_everything(project, monkeypatch)
    found = leaks(seen, records)
    FIGURES.measure("answer_leaks_old_sandbox_and_feedback", {"kinds_leaked": len(found), "kinds": len(KINDS),
                                                              "leaked": sorted(found)})
    # every route of the old setup that the new one closes: host files, .git, the feedback, the PR history
    must_leak = {"solution", "hidden_test", "expected_output", "reference_answer", "pr_head", "repo_file", "repo_git",
                 "mlflow", "dvc_config", "eval_solution", "eval_expected", "pr_tests"}
    assert must_leak <= set(found), f"the control found only {sorted(found)}"
    assert "env" not in found  # the environment was already cleared before; the control shows it still is
