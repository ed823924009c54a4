"""Benchmark: the sft stage's training configuration against TRL ``SFTTrainer`` defaults, on CPU.

    python benchmarks/sft.py                                  # 6 trajectories of 500-4,000 tokens, 1 epoch
    python benchmarks/sft.py --samples 4 --max-tokens 2000 --only stage
    python benchmarks/sft.py --gpu-llama-1b [--peak-tflops 989]   # GPU only

Both sides train SmolLM2-135M (``models/base``, or the embedded model converted into a temp dir)
with LoRA r=16 on all linear layers, in fp32, on the same seeded synthetic multi-turn tool-use
trajectories (trajectory schema, tool outputs included), for the same number of epochs:

* baseline: TRL ``SFTTrainer`` with its defaults for a conversational dataset with tools: padding to
  the longest in the batch, no packing, gradient checkpointing on; ``assistant_only_loss=True`` so
  it learns the same tokens, batch size 2 so padding happens, ``max_length=None`` (the default 1024
  would truncate), ``bf16=False``. Tool-call arguments and tools are JSON strings in the dataset:
  Arrow would otherwise unify their schemas and the template would render the added nulls;
* stage: ``pipelines.training.trainer.train`` with ``SFTParams(method="lora", batch_size=1)``, the stage's CPU
  default (padding-free flattening collator, no gradient checkpointing), on samples encoded with
  ``pipelines.training.data.encode_sample``.

Each side runs in its own subprocess, one after the other, so that peak RSS (``ru_maxrss``) is its
own; the subprocesses see no GPU, so the comparison is on the CPU on any machine. Seconds are those
of ``Trainer.train`` (the training loop; model loading, tokenising and saving excluded). The script
checks that both sides tokenise every sample identically and train on the same number of
non-padding and target tokens, and fails otherwise. Model FLOPs are
``4 x N x tokens``: LoRA on a frozen base costs a forward (2N) and a backward through the
activations (2N) per token, no weight gradients for frozen weights; attention's own FLOPs and
the recomputation under gradient checkpointing are not counted. The share is taken of the fp32
``torch.mm`` rate on 2048x2048 matrices measured before and after the trainings (the higher one).

``--gpu-llama-1b`` trains a randomly initialised Llama-shaped model of about 1B parameters (hidden
2048, 16 layers, 32 heads, 8 KV heads, intermediate 8192, the tokenizer's vocabulary, tied
embeddings) on 8k-token sequences in bf16 with flash-attention 2 (or SDPA), fully, with fused
AdamW, and prints tokens/s and model-FLOPs utilisation against ``--peak-tflops``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runnable from a checkout without installing

IGNORE = -100
TARGET_SPEEDUP = 3.0
CONFIGS = ("baseline", "stage")
LABELS = {"baseline": "(a) TRL SFTTrainer defaults, bs 2", "stage": "(b) training.trainer.train, bs 1"}


# ------------------------------------------------------------------ synthetic trajectories
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


def as_trl_row(record: dict) -> dict:
    """A conversational TRL row: arguments and tools as JSON strings so Arrow adds no null keys."""
    messages = []
    for message in record["messages"]:
        message = dict(message)
        if message.get("tool_calls"):
            message["tool_calls"] = [
                {**call, "function": {"name": call["function"]["name"],
                                      "arguments": json.dumps(call["function"]["arguments"], ensure_ascii=False)}}
                for call in message["tool_calls"]]
        messages.append(message)
    return {"messages": messages, "tools": json.dumps(record.get("tools") or [], ensure_ascii=False)}


# ------------------------------------------------------------------ base model and CPU rate
def resolve_base(scratch: Path) -> tuple[Path, str]:
    """``models/base`` when it has the tool template, else the embedded model converted into ``scratch``."""
    base = REPO / "models" / "base"
    template = base / "chat_template.jinja"
    if (base / "config.json").exists() and template.exists() and "generation" in template.read_text():
        return base, "models/base"
    from pipelines.llm.convert import build_base_model
    from pipelines.core.params import BaseModelParams

    out = scratch / "base"
    build_base_model(BaseModelParams(), out)
    return out, "embedded model converted into a temp dir"


def matmul_gflops(seconds: float = 3.0, n: int = 2048) -> float:
    """fp32 ``torch.mm`` rate on n x n matrices, GFLOP/s (2 n^3 per product), over about ``seconds``."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        torch.mm(a, b)
        count += 1
    return 2 * n**3 * count / elapsed / 1e9


# ------------------------------------------------------------------ one configuration, in a child process
class BatchCounter:
    """Wraps a collator: non-padding tokens, tokens as batched (padding included), target tokens."""

    def __init__(self, collator):
        self.collator = collator
        self.tokens = self.padded = self.targets = 0

    def __call__(self, features):
        batch = self.collator(features)
        mask = batch.get("attention_mask")
        self.padded += int(batch["input_ids"].numel())
        self.tokens += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
        self.targets += int((batch["labels"] != IGNORE).sum())
        return batch


def time_training_loops(timing: dict) -> None:
    """Record around ``Trainer.train``: seconds, CPU seconds, load average, peak RSS before it."""
    from transformers import Trainer

    original = Trainer.train

    def timed(self, *args, **kwargs):
        timing["rss_before_loop_mb"] = _peak_rss_mb()
        timing["load_start"] = os.getloadavg()[0]
        cpu, started = time.process_time(), time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            timing["seconds"] = time.perf_counter() - started
            timing["cpu_seconds"] = time.process_time() - cpu
            timing["load_end"] = os.getloadavg()[0]

    Trainer.train = timed


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_baseline(records: list[dict], base: Path, work: Path, epochs: int) -> dict:
    """TRL SFTTrainer defaults (padding, gradient checkpointing), assistant-only loss, batch size 2."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from pipelines.core.params import LoraParams
    from pipelines.training.data import encode_sample

    timing: dict = {}
    time_training_loops(timing)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    lora = LoraParams()
    peft_config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                             target_modules=lora.target_modules, task_type="CAUSAL_LM")
    args = SFTConfig(output_dir=str(work / "trl"), per_device_train_batch_size=2, num_train_epochs=epochs,
                     assistant_only_loss=True, max_length=None, bf16=False, save_strategy="no", report_to="none",
                     disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list([as_trl_row(r) for r in records]),
                         processing_class=tokenizer, peft_config=peft_config)
    mismatched = 0 if len(trainer.train_dataset) == len(records) else len(records)
    for row, record in zip(trainer.train_dataset, records):  # the map keeps order: row i is record i
        ours = encode_sample(tokenizer, record)
        labels = row.get("labels") or [t if m else IGNORE for t, m in zip(row["input_ids"], row["assistant_masks"])]
        mismatched += row["input_ids"] != ours["input_ids"] or list(labels) != ours["labels"]
    counter = BatchCounter(trainer.data_collator)
    trainer.data_collator = counter  # read when the dataloader is built, inside train()
    trainer.train()
    return {"tokens": counter.tokens, "padded_tokens": counter.padded, "target_tokens": counter.targets,
            "mismatched_samples": mismatched, "gradient_checkpointing": bool(trainer.args.gradient_checkpointing),
            **timing}


def run_stage(records: list[dict], base: Path, work: Path, epochs: int) -> dict:
    """``pipelines.training.trainer.train`` with the stage's CPU default: LoRA, batch size 1."""
    from transformers import AutoTokenizer

    from pipelines.core.params import SFTParams
    from pipelines.training.data import encode_sample
    from pipelines.training.model import use_checkpointing
    from pipelines.training.trainer import train

    timing: dict = {}
    time_training_loops(timing)
    tokenizer = AutoTokenizer.from_pretrained(base)
    samples = [encode_sample(tokenizer, r) for r in records]
    params = SFTParams(method="lora", batch_size=1, epochs=epochs)
    metrics = train(samples, base, work / "stage-out", params, checkpoints=work / "stage-checkpoints")
    return {"tokens": metrics["train_tokens"], "padded_tokens": metrics["train_tokens"],
            "target_tokens": metrics["target_tokens"], "mismatched_samples": 0,
            "gradient_checkpointing": use_checkpointing(params), "stage_train_seconds": metrics["train_seconds"],
            **timing}


def child(name: str, work: Path, epochs: int) -> None:
    records = [json.loads(line) for line in (work / "trajectories.jsonl").read_text().splitlines()]
    base = Path((work / "base_dir").read_text())
    result = (run_baseline if name == "baseline" else run_stage)(records, base, work, epochs)
    result["peak_rss_mb"] = _peak_rss_mb()
    (work / f"result-{name}.json").write_text(json.dumps(result))


def run_child(name: str, work: Path, epochs: int) -> dict:
    """Run one configuration in a fresh interpreter; its output goes to a log shown on failure."""
    log = work / f"{name}.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "CUDA_VISIBLE_DEVICES": ""}  # a CPU comparison everywhere: on a GPU the stage would switch to bf16
    with log.open("w") as fh:
        code = subprocess.call([sys.executable, __file__, "--child", name, "--work", str(work),
                                "--epochs", str(epochs)], stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    if code != 0:
        sys.stderr.write(log.read_text()[-6000:])
        raise SystemExit(f"{name}: exited with status {code} (log above)")
    return json.loads((work / f"result-{name}.json").read_text())


# ------------------------------------------------------------------ report
def print_table(results: dict[str, dict], n_samples: int, n_params: int, cpu_gflops: float) -> None:
    header = (f"{'configuration':36}{'samples':>8}{'tokens':>9}{'padded':>9}{'targets':>9}{'seconds':>9}"
              f"{'tok/s':>8}{'RSS pre MB':>11}{'peak MB':>9}{'GFLOP/s':>9}{'share':>7}")
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        rate = r["tokens"] / r["seconds"]
        gflops = 4 * n_params * rate / 1e9
        padded = f"{r['padded_tokens']:,}" if name == "baseline" else "-"
        print(f"{LABELS[name]:36}{n_samples:>8}{r['tokens']:>9,}{padded:>9}{r['target_tokens']:>9,}"
              f"{r['seconds']:>9.1f}{rate:>8.1f}{r['rss_before_loop_mb']:>11,.0f}{r['peak_rss_mb']:>9,.0f}"
              f"{gflops:>9.1f}{gflops / cpu_gflops:>7.1%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=6, help="trajectories (default 6)")
    parser.add_argument("--min-tokens", type=int, default=500, help="shortest trajectory, tokens (default 500)")
    parser.add_argument("--max-tokens", type=int, default=4000, help="longest trajectory, tokens (default 4000)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs on each side (default 1)")
    parser.add_argument("--only", choices=CONFIGS, help="run one configuration only")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic trajectories")
    parser.add_argument("--gpu-llama-1b", action="store_true", help="GPU only: 1B Llama-shaped model, 8k context, bf16")
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="the GPU's dense bf16 peak for --gpu-llama-1b (default 989: H100 SXM)")
    parser.add_argument("--gpu-steps", type=int, default=10, help="timed steps for --gpu-llama-1b (default 10)")
    parser.add_argument("--gpu-seq", type=int, default=8192, help="sequence length for --gpu-llama-1b (default 8192)")
    parser.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.work, args.epochs)
        return 0
    if args.gpu_llama_1b:
        return gpu_llama_1b(args)
    if args.samples < 1 or not 0 < args.min_tokens <= args.max_tokens:
        parser.error("need --samples >= 1 and 0 < --min-tokens <= --max-tokens")

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pipelines.training.data import encode_sample

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="sft-bench-") as tmp:
        work = Path(tmp)
        base, base_note = resolve_base(work)
        tokenizer = AutoTokenizer.from_pretrained(base)
        records = build_trajectories(tokenizer, args.samples, args.min_tokens, args.max_tokens, args.seed)
        lengths = [len(encode_sample(tokenizer, r)["input_ids"]) for r in records]
        n_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(base).parameters())
        (work / "trajectories.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (work / "base_dir").write_text(str(base))
        print(f"base model: {base} ({base_note})")
        print(f"{len(records)} synthetic tool-use trajectories, tokens: {', '.join(map(str, lengths))} "
              f"(total {sum(lengths):,}); {sum(len(r['messages']) for r in records)} messages; "
              f"{args.epochs} epoch(s)")
        gflops_before = matmul_gflops()
        print(f"fp32 torch.mm 2048x2048 before: {gflops_before:.1f} GFLOP/s; "
              f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; {os.cpu_count()} CPUs",
              flush=True)
        results = {}
        for name in CONFIGS if not args.only else (args.only,):
            print(f"running {name} ...", flush=True)
            results[name] = run_child(name, work, args.epochs)
        gflops_after = matmul_gflops()
    load_after = os.getloadavg()
    cpu_gflops = max(gflops_before, gflops_after)
    print(f"fp32 torch.mm 2048x2048 after: {gflops_after:.1f} GFLOP/s; "
          f"load average {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print()
    print_table(results, len(records), n_params, cpu_gflops)
    print()
    print("tokens: non-padding tokens trained on; padded: tokens as batched (padding included); targets: "
          "assistant tokens in the loss")
    print("tok/s: non-padding tokens / seconds of Trainer.train; RSS pre: peak RSS before the training loop; "
          "peak: ru_maxrss of the process")
    print(f"GFLOP/s: model FLOPs 4 x N x tokens / seconds, N = {n_params:,} "
          f"(2N forward + 2N backward through activations; frozen base, LoRA); share: of the fp32 "
          f"torch.mm rate {cpu_gflops:.1f} GFLOP/s")
    for name, r in results.items():
        print(f"{name}: load average (1 min) {r['load_start']:.2f} at the loop's start, {r['load_end']:.2f} at its "
              f"end; the loop used {r['cpu_seconds'] / r['seconds']:.2f} CPU cores on average; "
              f"gradient checkpointing {'on' if r['gradient_checkpointing'] else 'off'}"
              + (f"; padding {1 - r['tokens'] / r['padded_tokens']:.1%} of batched tokens"
                 if name == "baseline" else "")
              + (f"; pipelines.training.trainer.train's own train_seconds {r['stage_train_seconds']:.1f}"
                 if name == "stage" else ""))
    ok = True
    if "baseline" in results and results["baseline"]["mismatched_samples"]:
        print(f"CHECK FAILED: {results['baseline']['mismatched_samples']} samples tokenised differently by TRL "
              "and encode_sample")
        ok = False
    if len(results) == 2:
        a, b = results["baseline"], results["stage"]
        same = a["tokens"] == b["tokens"] and a["target_tokens"] == b["target_tokens"]
        print(f"same tokens on both sides: {'yes' if same else 'NO'} ({a['tokens']:,} vs {b['tokens']:,} "
              f"non-padding, {a['target_tokens']:,} vs {b['target_tokens']:,} targets); every sample tokenised "
              f"identically by TRL and encode_sample: {'yes' if not a['mismatched_samples'] else 'NO'}")
        ok = ok and same
        speed = (b["tokens"] / b["seconds"]) / (a["tokens"] / a["seconds"])
        memory = b["peak_rss_mb"] / a["peak_rss_mb"]
        print(f"ratio (b)/(a): tokens/s {speed:.2f}x (target >= {TARGET_SPEEDUP:.0f}x: "
              f"{'met' if speed >= TARGET_SPEEDUP else 'NOT met'}); peak RSS {memory:.2f}x (target <= 1.00x: "
              f"{'met' if memory <= 1.0 else 'NOT met'})")
    return 0 if ok else 1


# ------------------------------------------------------------------ GPU: 1B Llama-shaped model
def llama_1b_config(vocab_size: int, seq: int):
    """The Llama-3.2-1B shape (hidden 2048, 16 layers, 32/8 heads, MLP 8192, tied embeddings)."""
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                       intermediate_size=8192, vocab_size=vocab_size, max_position_embeddings=seq,
                       tie_word_embeddings=True, use_cache=False)


def train_steps(config, *, device: str, dtype, attn: str, seq: int, steps: int, warmup: int = 2) -> dict:
    """Full training of a randomly initialised model on random tokens: seconds per timed step and memory."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    with torch.device(device):  # initialise on the device: 1B parameters are slow to build on the CPU
        model = LlamaForCausalLM._from_config(config, attn_implementation=attn, dtype=dtype)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda")
    ids = torch.randint(0, config.vocab_size, (1, seq), device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = []
    for step in range(warmup + steps):
        sync()
        started = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        if step >= warmup:
            times.append(time.perf_counter() - started)
    memory = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0
    return {"params": sum(p.numel() for p in model.parameters()), "step_seconds": sum(times) / len(times),
            "loss": loss.item(), "max_memory_gib": memory}


def gpu_llama_1b(args) -> int:
    import torch

    if not torch.cuda.is_available():
        print("--gpu-llama-1b needs a CUDA GPU (torch.cuda.is_available() is False here); nothing to do")
        return 0
    vocab, source = 49152, "SmolLM2's vocabulary size (no tokenizer found)"
    try:
        from transformers import AutoTokenizer

        with tempfile.TemporaryDirectory(prefix="sft-bench-") as tmp:
            base, note = resolve_base(Path(tmp))
            vocab, source = len(AutoTokenizer.from_pretrained(base)), f"tokenizer of {note}"
    except Exception as exc:  # a GPU box may lack the embedded model: the shape matters, not the words
        print(f"no tokenizer ({exc}); using vocab {vocab}")
    attn = "flash_attention_2" if importlib.util.find_spec("flash_attn") else "sdpa"
    config = llama_1b_config(vocab, args.gpu_seq)
    result = train_steps(config, device="cuda", dtype=torch.bfloat16, attn=attn, seq=args.gpu_seq, steps=args.gpu_steps)
    n, layers, hidden = result["params"], config.num_hidden_layers, config.hidden_size
    flops_per_token = 6 * n + 12 * layers * hidden * args.gpu_seq
    rate = args.gpu_seq / result["step_seconds"]
    achieved = flops_per_token * rate / 1e12
    print(f"{torch.cuda.get_device_name()}: Llama-shaped model, {n / 1e9:.3f}B parameters (vocab {vocab}, {source}), "
          f"{args.gpu_seq} tokens per step, bf16 weights and AdamW (fused), attention {attn}, "
          f"no gradient checkpointing")
    print(f"{args.gpu_steps} timed steps (after 2 warm-up): {result['step_seconds'] * 1000:.0f} ms/step, "
          f"{rate:,.0f} tokens/s, peak memory {result['max_memory_gib']:.1f} GiB, last loss {result['loss']:.3f}")
    print(f"model FLOPs per token 6N + 12 x layers x hidden x seq = {flops_per_token / 1e9:.2f} GFLOP; "
          f"{achieved:.0f} TFLOP/s = MFU {achieved / args.peak_tflops:.1%} of {args.peak_tflops:.0f} TFLOP/s "
          f"(6N alone: {6 * n * rate / 1e12 / args.peak_tflops:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
