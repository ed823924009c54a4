"""Seeded synthetic agent trajectories for ``benchmarks/sft.py``: bash and file-tool episodes with their outputs,
grown to a token target with the model's tokenizer and chat template, in the trajectory schema."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

NOUNS = ["invoice", "order", "customer", "session", "record", "report", "config", "metric", "token", "batch",
         "schedule", "payment", "account", "event", "shipment", "cache", "queue", "job", "ledger", "forecast"]
VERBS = ["load", "parse", "validate", "merge", "normalise", "compute", "render", "filter", "group", "export",
         "resolve", "retry", "summarise", "dedupe", "rank", "split"]
ATTRS = ["amount", "created_at", "status", "count", "priority", "region", "duration", "score", "weight", "limit",
         "currency", "owner", "deadline", "attempts"]
PACKAGES = ["billing", "orders", "analytics", "scheduler", "ingest", "reports"]
OPS = ["<", "<=", ">", ">=", "==", "!="]
TASKS = [
    "`{func}` in `{path}` gives wrong results when one {noun} has no {attr}: the test `{test}` fails. Find the cause, "
    "fix it without changing the public signature, and make `pytest -q` pass.",
    "Add a `--{attr}` option to the `{noun}` command in `{path}` that filters on {attr}, with a test, and keep the "
    "existing tests green.",
    "Our nightly job crashes in `{func}` ({path}) on {noun}s whose {attr} is missing. Make it skip those with a "
    "warning, add a regression test, and explain the change in CHANGELOG.md.",
    "Refactor `{path}` so that `{func}` no longer reads the {noun} file twice; behaviour must stay the same "
    "and `pytest -q` must pass.",
]
REMARKS = {  # what an assistant says before each kind of step; empty text happens too
    "listing": ["Let me look at the workspace first.", ""], "status": ["Checking the state of the tree.", ""],
    "read": ["I'll read the module before changing anything.", "Let me read `{func}` and its neighbours.", ""],
    "test_fail": ["Running the tests to see the current state.", "Let me reproduce the failure first.", ""],
    "grep": ["The failure points at the comparison on `{attr}`; checking where else `{attr}` is compared.", ""],
    "read_test": ["Now the existing tests for this module.", ""],
    "edit": ["The guard must come before the comparison: records without `{attr}` are skipped with a warning.", ""],
    "test_pass": ["Running the tests again.", ""], "diff": ["The tests pass; let me check the diff once more.", ""],
    "write": ["Adding a regression test for {noun}s without `{attr}`.", ""],
}


MIN_STEPS = 1


class TrajectoryWriter:
    """Seeded, realistic agent episodes (bash / file tools with their outputs) grown to a token target."""

    def __init__(self, tokenizer, seed: int):
        from pipelines.agent.loop import SYSTEM_PROMPT
        from pipelines.agent.tools import TOOL_SCHEMAS

        self.tokenizer = tokenizer
        self.rng = random.Random(seed)
        self.system_prompt = SYSTEM_PROMPT
        self.schemas = {s["function"]["name"]: s for s in TOOL_SCHEMAS}
        self.call_id = 0

    def record(self, target: int) -> dict[str, Any]:
        """One trajectory record of about ``target`` tokens (with this tokenizer and its chat template)."""
        tools = self._tool_set(target)
        names = [t["function"]["name"] for t in tools]
        module, noun, attr = self._module()
        func = f"{self.rng.choice(VERBS)}_{noun}s"
        test = f"tests/test_{module.stem}.py::test_{func}_{attr}"
        query = self.rng.choice(TASKS).format(func=func, path=module, noun=noun, attr=attr, test=test)
        messages = [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": query}]
        context = {"module": module, "noun": noun, "attr": attr, "func": func}
        steps = self._plan(names)
        for i, kind in enumerate(steps):
            remaining = target - self._length(messages + self._finish(), tools)
            if i < MIN_STEPS:  # even the shortest episode acts before it finishes
                messages += self._step(kind if remaining > 150 else "status", names, context, budget=max(remaining, 60))
                continue
            if remaining < 60:
                break
            step = self._step(kind, names, context, budget=remaining)
            if self._length(messages + step + self._finish(), tools) > target * 1.04:
                step = self._step("status", names, context, budget=remaining)  # a small one may still fit
                if self._length(messages + step + self._finish(), tools) > target * 1.04:
                    break
            messages += step
            if self._length(messages + self._finish(), tools) >= target * 0.96:
                break
        return {"messages": messages + self._finish(), "tools": tools,
                "meta": {"source": "synthetic", "generator": "benchmarks/sft.py", "target_tokens": target}}

    def _tool_set(self, target: int) -> list[dict]:
        # short episodes come from set-ups with fewer tools: the full schema list alone is ~870 tokens
        for names, needs in ((("bash", "read_file", "write_file", "str_replace", "finish"), 1700),
                             (("bash", "read_file", "str_replace", "finish"), 1200), (("bash", "finish"), 0)):
            if target >= needs:
                return [self.schemas[n] for n in names]
        raise AssertionError("unreachable")

    def _plan(self, names: list[str]) -> list[str]:
        cycle = ["test_fail", "read", "grep", "read_test", "edit", "test_pass", "diff"]
        if "write_file" in names:
            cycle += ["write", "test_pass"]
        return ["listing"] + cycle * 12

    def _module(self) -> tuple[Path, str, str]:
        noun, attr = self.rng.choice(NOUNS), self.rng.choice(ATTRS)
        return Path("src") / self.rng.choice(PACKAGES) / f"{noun}s.py", noun, attr

    def _length(self, messages: list[dict], tools: list[dict]) -> int:
        from pipelines.training.data import encode_sample

        return len(encode_sample(self.tokenizer, {"messages": messages, "tools": tools})["input_ids"])

    def _call(self, text: str, name: str, arguments: dict, output: str, ctx: dict | None = None) -> list[dict]:
        self.call_id += 1
        call_id = f"call_{self.call_id:06d}"
        content = text.format(**ctx) if ctx else text
        return [{"role": "assistant", "content": content,
                 "tool_calls": [{"id": call_id, "type": "function",
                                 "function": {"name": name, "arguments": arguments}}]},
                {"role": "tool", "tool_call_id": call_id, "content": output}]

    def _finish(self) -> list[dict]:
        summary = ("Fixed the guard so records without the field are skipped before the comparison, added a "
                   "regression test, and ran the whole test suite: all tests pass.")
        return [{"role": "assistant", "content": "All checks pass.",
                 "tool_calls": [{"id": "call_finish", "type": "function",
                                 "function": {"name": "finish", "arguments": {"summary": summary}}}]},
                {"role": "tool", "tool_call_id": "call_finish", "content": "Finished."}]

    def _step(self, kind: str, names: list[str], ctx: dict, budget: int) -> list[dict]:
        rng = self.rng
        remark = rng.choice(REMARKS[kind])
        lines = max(6, min(rng.randint(12, 50), budget // 16))  # ~12-16 tokens a line of code
        module, noun, attr, func = ctx["module"], ctx["noun"], ctx["attr"], ctx["func"]
        if kind in ("listing", "status"):
            return self._call(remark, "bash", {"command": "ls -la && git status --short | head -20"},
                              self._listing(small=kind == "status"), ctx)
        if kind in ("read", "read_test"):
            path = module if kind == "read" else Path("tests") / f"test_{module.stem}.py"
            code = self._code(noun, attr, lines, tests=kind == "read_test")
            numbered = "\n".join(f"{i:6d}\t{line}" for i, line in enumerate(code.splitlines(), 1))
            if "read_file" in names:
                return self._call(remark, "read_file", {"path": str(path), "start_line": 1, "end_line": lines},
                                  numbered, ctx)
            return self._call(remark, "bash", {"command": f"cat -n {path} | head -{lines}"},
                              numbered + "\n[exit code 0]", ctx)
        if kind in ("test_fail", "test_pass"):
            return self._call(remark, "bash", {"command": f"pytest -q tests/test_{module.stem}.py"},
                              self._pytest(func, attr, failed=kind == "test_fail", budget=budget), ctx)
        if kind == "grep":
            hits = "\n".join(f"src/{rng.choice(PACKAGES)}/{rng.choice(NOUNS)}s.py:{rng.randint(5, 300)}:    "
                             f"{self._statement(noun, attr)}" for _ in range(max(2, min(25, budget // 40))))
            return self._call(remark, "bash", {"command": f"grep -rn '{attr}' src | head -25"},
                              hits + "\n[exit code 0]", ctx)
        if kind == "edit":
            old = f"    if item.{attr} {rng.choice(OPS)} {rng.randint(0, 99)}:\n        result.append(item)"
            new = (f"    if item.{attr} is None:\n        log.warning('skipping %s without {attr}', item.id)\n"
                   f"        continue\n{old}")
            if "str_replace" in names:
                return self._call(remark, "str_replace", {"path": str(module), "old": old, "new": new},
                                  f"Replaced 1 occurrence in {module}.", ctx)
            script = f"python - <<'EOF'\nfrom pathlib import Path\np = Path({str(module)!r})\n" \
                     f"p.write_text(p.read_text().replace({old!r}, {new!r}, 1))\nEOF"
            return self._call(remark, "bash", {"command": script}, "[exit code 0]", ctx)
        if kind == "write":
            path = Path("tests") / f"test_{module.stem}_regression.py"
            content = self._code(noun, attr, max(6, lines // 2), tests=True)
            return self._call(remark, "write_file", {"path": str(path), "content": content},
                              f"Wrote {len(content.encode())} bytes ({content.count(chr(10)) + 1} lines) to {path}.",
                              ctx)
        if kind == "diff":
            body = "\n".join(f"{'+' if rng.random() < 0.6 else '-'}    {self._statement(noun, attr)}"
                             for _ in range(max(3, min(30, budget // 30))))
            diff = f"diff --git a/{module} b/{module}\n--- a/{module}\n+++ b/{module}\n@@ -40,6 +40,9 @@\n{body}"
            return self._call(remark, "bash", {"command": "git diff"}, diff + "\n[exit code 0]", ctx)
        raise ValueError(kind)

    def _listing(self, small: bool) -> str:
        rng = self.rng
        rows = ["total 48", "drwxr-xr-x 6 root root 4096 Nov 25 13:36 .", "drwxr-xr-x 3 root root   60 Nov 25 13:36 .."]
        for name in [".git", "src", "tests", "pyproject.toml", "README.md", "CHANGELOG.md"][: 3 if small else 6]:
            mode = "drwxr-xr-x 4" if "." not in name[1:] else "-rw-r--r-- 1"
            rows.append(f"{mode} root root {rng.randint(90, 9000):5d} "
                        f"Nov 25 13:{rng.randint(10, 59)} {name}")
        return "\n".join(rows) + ("\n M src/" + rng.choice(PACKAGES) + "/__init__.py" if not small else "") + \
            "\n[exit code 0]"

    def _statement(self, noun: str, attr: str) -> str:
        rng = self.rng
        return rng.choice([
            f"if {noun}.{attr} {rng.choice(OPS)} {rng.randint(0, 500)}:",
            f"total += {noun}.{attr} * {rng.choice(ATTRS)}",
            f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}s({noun}, {attr}={rng.randint(1, 30)})",
            f"return sorted({noun}s, key=lambda x: x.{attr})",
            f"log.info('{rng.choice(VERBS)} %d {noun}s by {attr}', len({noun}s))",
        ])

    def _code(self, noun: str, attr: str, lines: int, tests: bool) -> str:
        rng = self.rng
        out = ['"""Tests for the {0} helpers."""'.format(noun) if tests else f'"""{noun.title()} helpers."""', "",
               "from __future__ import annotations", "", "import logging", "from dataclasses import dataclass", ""]
        if tests:
            out += [f"from src.{rng.choice(PACKAGES)}.{noun}s import *  # noqa: F403", ""]
        else:
            out += ["log = logging.getLogger(__name__)", "", "", "@dataclass", f"class {noun.title()}:",
                    "    id: str"] + [f"    {a}: float | None = None" for a in rng.sample(ATTRS, 4)] + [""]
        while len(out) < lines:
            verb, other = rng.choice(VERBS), rng.choice(ATTRS)
            if tests:
                out += ["", f"def test_{verb}_{noun}s_{other}():",
                        f"    items = [{noun.title()}(id='a', {other}={rng.randint(1, 9)}), "
                        f"{noun.title()}(id='b', {other}=None)]",
                        f"    assert [x.id for x in {verb}_{noun}s(items)] == ['a']"]
            else:
                out += ["", f"def {verb}_{noun}s({noun}s: list[{noun.title()}], limit: int = {rng.randint(1, 100)}) "
                        f"-> list[{noun.title()}]:",
                        f'    """{verb.title()} the {noun}s whose {other} passes the limit."""',
                        "    result = []", f"    for item in {noun}s:",
                        f"        if item.{other} {rng.choice(OPS)} limit:", "            result.append(item)",
                        f"    log.debug('{verb}: kept %d of %d', len(result), len({noun}s))", "    return result"]
        return "\n".join(out[:lines])

    def _pytest(self, func: str, attr: str, failed: bool, budget: int) -> str:
        rng = self.rng
        n = rng.randint(8, 40)
        if not failed:
            return f"{'.' * n}{' ' * max(1, 60 - n)}[100%]\n{n} passed in {rng.uniform(0.1, 3):.2f}s\n[exit code 0]"
        frames = "\n".join(f"src/{rng.choice(PACKAGES)}/{rng.choice(NOUNS)}s.py:{rng.randint(10, 300)}: in "
                           f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}s\n    {self._statement(rng.choice(NOUNS), attr)}"
                           for _ in range(max(1, min(12, budget // 120))))
        return (f"{'.' * (n // 2)}F{'.' * (n - n // 2 - 1)}\n=================================== FAILURES "
                f"===================================\n___________________________ test_{func}_{attr} "
                f"___________________________\n\n    def test_{func}_{attr}():\n"
                f">       assert {func}(items) == expected\n"
                f"{frames}\nE       TypeError: '<' not supported between instances of 'NoneType' and 'int'\n"
                f"=========================== short test summary info ============================\n"
                f"FAILED tests/test_{func}.py::test_{func}_{attr} - TypeError: '<' not supported\n"
                f"1 failed, {n - 1} passed in {rng.uniform(0.1, 3):.2f}s\n[exit code 1]")


def build_trajectories(tokenizer, n: int, min_tokens: int, max_tokens: int, seed: int = 0) -> list[dict]:
    """``n`` trajectory records with targets spread evenly from ``min_tokens`` to ``max_tokens``, shuffled."""
    from pipelines.core.schema import TrajectoryRecord

    writer = TrajectoryWriter(tokenizer, seed)
    targets = [round(min_tokens + (max_tokens - min_tokens) * i / max(1, n - 1)) for i in range(n)]
    random.Random(seed).shuffle(targets)
    records = [writer.record(t) for t in targets]
    for record in records:
        TrajectoryRecord.model_validate(record)  # the schema the stage reads
    return records
