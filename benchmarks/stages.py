"""The local backend on the collect and eval stages' own episodes: batching, KV cache and drafts on vs off.

    python benchmarks/stages.py [--root DIR] [--stage collect|eval|both] [--limit N] [--suite NAME ...]
                                [--no-shards]

Builds the episode lists as the stages do, from ``DIR/params.yaml`` (default: this checkout) and its
``models/base``, ``models/sft``, seed tasks and query files: collect's planned (query, teacher) pairs
whose teacher is a model (``replay`` episodes never call one) and eval's tasks x ``eval.models`` x k, with
their real tools, verifiers, feedback rounds and sampling (greedy). Each list runs twice in one process,
with the stage's own ``parallel`` episodes at once:

* **off**: every local model with ``max_batch: 1``, ``kv_cache_mb: 0``, ``draft_tokens: 0``,
  ``packed_gemm: false``: one request at a time, each prompt encoded from scratch;
* **on**: the params as they are (running batch, KV cache across turns, prompt-lookup drafts, packed GEMM).

Prints per stage and mode the wall time of the episodes (model loading excluded), generated tokens/s,
prompt tokens whose encoding the cache avoided, and an identical-output check: every model call whose
prompt (messages, tools, sampling, model) occurs in both runs must return the same text, and episodes
whose transcripts are identical end to end are counted. Turns end where the model ends them (its
end-of-turn token or a stage's ``max_tokens``); episode time limits (``limits.max_seconds``) are lifted to
an hour in both modes so a slow run does not cut episodes the fast run finishes.

Then, when this checkout has sharded collection (``pipelines.collection.shards``), the same collect
episodes split in 2 shards, run by 1 worker (a process that runs shard 0 then shard 1) and by 2 workers
(two processes at once, each with its own copy of the model) on this machine: episodes per minute, each
worker's model loading included, as a worker that starts a shard pays it.

``--limit N`` keeps the first N episodes of collect and the first N tasks of eval; ``--suite`` keeps only
the named eval suites. A quick look: ``--limit 2 --suite builtin`` (a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OFF = {"max_batch": 1, "kv_cache_mb": 0, "draft_tokens": 0, "packed_gemm": False}
HOUR = 3600


@dataclass
class Calls:
    """Every local model call of one run: prompt hash -> reply text, and the token counts."""

    replies: dict[str, str] = field(default_factory=dict)
    generated: int = 0
    prompt: int = 0
    cached: int = 0
    count: int = 0


@contextmanager
def recording(calls: Calls):
    """Record each ``LocalModel.chat`` reply under a hash of everything that determines it."""
    from pipelines.llm.local.model import LocalModel

    original = LocalModel.chat

    def chat(self, messages, tools=None, **sampling):
        reply = original(self, messages, tools, **sampling)
        key = hashlib.sha256(json.dumps([str(self.path), str(self.adapter), messages, tools, sampling],
                                        sort_keys=True, default=str).encode()).hexdigest()
        calls.replies[key] = reply.raw or ""
        calls.generated += reply.usage.completion_tokens
        calls.prompt += reply.usage.prompt_tokens
        calls.cached += reply.usage.cached_tokens
        calls.count += 1
        return reply

    LocalModel.chat = chat
    try:
        yield calls
    finally:
        LocalModel.chat = original


def stage_params(root: Path, backend_on: bool):
    """``root``'s params, every local model's speed settings on (as given) or off, episode time limits lifted."""
    import yaml

    from pipelines.core.params import parse_params

    data = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    for spec in data.get("llm", {}).get("models", {}).values():
        if spec.get("backend") == "local" and not backend_on:
            spec.update(OFF)
    for group in ("collect", "eval"):
        data.setdefault(group, {}).setdefault("limits", {})["max_seconds"] = HOUR
    return parse_params(data, source=str(root / "params.yaml"))


def forget_models() -> None:
    """Drop the loaded models (the next mode loads its own with its settings)."""
    from pipelines.llm import roles

    with roles._cache_lock:
        roles._cache.clear()
    gc.collect()


def collect_jobs(params, root: Path, limit: int):
    from pipelines.collection.plan import load_all_queries, plan_jobs

    jobs = [j for j in plan_jobs(load_all_queries(params.collect, root), params) if j.teacher != "replay"]
    return jobs[: limit or None]


def run_collect(params, root: Path, limit: int, shard: tuple[int, int] | None = None) -> tuple[float, dict]:
    """Collect's model episodes as the stage runs them; (seconds, episode key -> messages)."""
    from pipelines.agent.harness import pool_size, run_pool
    from pipelines.collection.episode import Collector

    jobs = collect_jobs(params, root, limit)
    if shard is not None:
        from pipelines.collection.shards import shard_jobs

        jobs = shard_jobs(jobs, shard[0], shard[1])
    collector = Collector(params, root)
    collector.load_teachers(jobs)
    started = time.perf_counter()
    attempts = run_pool(jobs, collector.attempt, workers=pool_size(params.collect, len(jobs)), desc="episodes",
                        unit="ep")
    seconds = time.perf_counter() - started
    # by task and teacher: the episode key hashes the teacher's spec, speed settings included
    return seconds, {f"{a.job.query.id}/{a.job.teacher}": (a.record or {}).get("messages", a.crashed or a.not_recorded)
                     for a in attempts}


def eval_tasks(params, root: Path, limit: int, suites: list[str]):
    from pipelines.core.errors import UserError
    from pipelines.evaluation.tasks import load_tasks

    chosen = [s for s in params.eval.suites if not suites or s.name in suites]
    if not chosen:
        raise UserError(f"--suite {', '.join(suites)}: not among eval.suites "
                        f"({', '.join(s.name for s in params.eval.suites)}) in params.yaml")
    return load_tasks(chosen, root)[: limit or None]


def run_eval(params, root: Path, limit: int, suites: list[str]) -> tuple[float, dict]:
    """Eval's trials as the stage runs them (every model of eval.models, k each); (seconds, trial -> messages)."""
    from pipelines.agent.verifiers import needs_judge
    from pipelines.evaluation.models import build_models, check_inputs, describe_models
    from pipelines.evaluation.trial import evaluate
    from pipelines.llm.roles import model_for_role

    check_inputs(params, root)
    tasks = eval_tasks(params, root, limit, suites)
    models = build_models(params, root)
    judge = None
    if any(needs_judge(s.verifier) for t in tasks for s in t.subtasks):
        judge = model_for_role(params.llm, "judge").load()
    info = describe_models(params, root, list(models))
    started = time.perf_counter()
    trials = evaluate(tasks, models, params.eval, judge=judge, model_info=info)
    seconds = time.perf_counter() - started
    # trials come in a stable order (task, trial, model): the position tells them apart
    return seconds, {f"{i}:{t.task.id}": t.record.get("messages") for i, t in enumerate(trials)}


def measure(stage: str, root: Path, args) -> dict[str, Any]:
    """Run ``stage``'s episodes off, then on; the figures of both and the identical-output check."""
    results: dict[str, Any] = {}
    for mode in ("off", "on"):
        params = stage_params(root, backend_on=mode == "on")
        calls = Calls()
        with recording(calls):
            if stage == "collect":
                seconds, transcripts = run_collect(params, root, args.limit)
            else:
                seconds, transcripts = run_eval(params, root, args.limit, args.suite)
        results[mode] = {"seconds": seconds, "calls": calls, "transcripts": transcripts,
                         "decoding": decoding_stats()}
        forget_models()
    return results


def decoding_stats() -> str:
    from pipelines.llm import roles

    parts = []
    for (name, _), model in roles._cache.items():
        batcher = getattr(model, "_batcher", None)
        if batcher is None or not batcher.steps:
            continue
        decoder = batcher.decoder
        parts.append(f"{name}: {batcher.steps} steps, {batcher.mean_rows:.1f} rows/step (max {batcher.max_rows}), "
                     f"drafts kept {decoder.accepted}/{decoder.drafted}")
    return "; ".join(parts)


def report(stage: str, results: dict[str, Any]) -> bool:
    off, on = results["off"], results["on"]
    names = {"off": "one request at a time, no cache", "on": "the backend (batch, cache, drafts)"}
    episodes = len(off["transcripts"])
    print(f"\n{stage}: {episodes} episodes, {off['calls'].count} model calls off / {on['calls'].count} on")
    print(f"  {'mode':36s} {'seconds':>8s} {'generated':>10s} {'gen tok/s':>10s} {'ratio':>6s} "
          f"{'prompt tok':>11s} {'prefill avoided':>16s}")
    base_rate = off["calls"].generated / off["seconds"] if off["seconds"] else 0.0
    for mode in ("off", "on"):
        r, c = results[mode], results[mode]["calls"]
        rate = c.generated / r["seconds"] if r["seconds"] else 0.0
        ratio = off["seconds"] / r["seconds"] if r["seconds"] else 0.0
        avoided = f"{c.cached} ({c.cached / c.prompt:.0%})" if c.prompt else "0"
        print(f"  {names[mode]:36s} {r['seconds']:8.1f} {c.generated:10d} {rate:10.1f} {ratio:5.2f}x "
              f"{c.prompt:11d} {avoided:>16s}")
        if r["decoding"]:
            print(f"    {r['decoding']}")
    shared = off["calls"].replies.keys() & on["calls"].replies.keys()
    differ = [k for k in shared if off["calls"].replies[k] != on["calls"].replies[k]]
    same_episodes = sum(off["transcripts"].get(k) == v for k, v in on["transcripts"].items())
    print(f"  wall-time ratio {off['seconds'] / on['seconds']:.2f}x; generated tokens/s ratio "
          f"{(on['calls'].generated / on['seconds']) / base_rate if base_rate else 0:.2f}x")
    print(f"  identical greedy outputs: {len(shared) - len(differ)} of {len(shared)} calls with the same prompt in "
          f"both runs returned the same text; {same_episodes} of {episodes} episodes identical end to end")
    return not differ


def shard_figures(root: Path, args) -> None:
    try:
        from pipelines.collection.shards import shard_jobs  # noqa: F401
    except ImportError:
        print("\nsharded collect: not in this checkout (no pipelines.collection.shards); skipped")
        return
    params = stage_params(root, backend_on=True)
    episodes = len(collect_jobs(params, root, args.limit))
    child = [sys.executable, __file__, "--root", str(root), "--limit", str(args.limit), "--child-shard"]
    started = time.perf_counter()
    for i in range(2):  # one worker: the two shards one after the other
        subprocess.run([*child, f"{i}/2"], check=True)
    one = time.perf_counter() - started
    started = time.perf_counter()
    procs = [subprocess.Popen([*child, f"{i}/2"]) for i in range(2)]
    for proc in procs:
        if proc.wait():
            raise SystemExit(f"shard worker exited with {proc.returncode}")
    two = time.perf_counter() - started
    print(f"\nsharded collect ({episodes} model episodes in 2 shards, each worker a process loading its own model, "
          f"loading included, on this machine): 1 worker {episodes / one * 60:.2f} episodes/min ({one:.0f} s), "
          f"2 workers {episodes / two * 60:.2f} episodes/min ({two:.0f} s), {one / two:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the project checkout whose params.yaml, models and data to use (default: this one)")
    parser.add_argument("--stage", choices=["collect", "eval", "both"], default="both")
    parser.add_argument("--limit", type=int, default=0, help="first N collect episodes and eval tasks (0 = all)")
    parser.add_argument("--suite", action="append", default=[], help="only this eval suite (repeatable)")
    parser.add_argument("--no-shards", action="store_true", help="skip the sharded-collect figures")
    parser.add_argument("--child-shard", help=argparse.SUPPRESS)
    args = parser.parse_args()
    root = args.root.resolve()
    os.environ["LIMI_ROOT"] = str(root)  # seeds, tasks and relative model paths resolve there
    os.environ.setdefault("MLFLOW_TRACKING_URI", "sqlite:///:memory:")  # nothing here records a run
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from pipelines.agent.harness import check_sandbox

    if args.child_shard:
        index, count = (int(x) for x in args.child_shard.split("/"))
        run_collect(stage_params(root, backend_on=True), root, args.limit, shard=(index, count))
        return 0
    params = stage_params(root, backend_on=True)
    check_sandbox(params.collect, "collect")
    stages = ["collect", "eval"] if args.stage == "both" else [args.stage]
    print(f"root {root}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the start; "
          f"off = {', '.join(f'{k} {v}' for k, v in OFF.items())}; on = params.yaml's llm.models")
    identical = True
    for stage in stages:
        identical &= report(stage, measure(stage, root, args))
    if "collect" in stages and not args.no_shards:
        shard_figures(root, args)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end; greedy outputs identical: {identical}")
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
