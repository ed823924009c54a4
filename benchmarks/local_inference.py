"""Local inference for many episodes at once: one request at a time vs the batching backend.

    python benchmarks/local_inference.py [--model models/base] [--episodes 8] [--turns 6] [--fixed-length]

Replays an agent-like workload with the real model: ``--episodes`` concurrent episodes of
``--turns`` turns; each turn's history grows by a tool result of a few hundred tokens and asks for
96-160 new tokens (a per-turn budget; the turn ends at its own end-of-turn token, or with
``--fixed-length`` generates exactly its budget: a synthetic upper bound, since no stage can hold back the
end-of-turn token; ``benchmarks/stages.py`` measures the stages' own episodes). Runs it twice in one process: (a) every request
alone, one after the other, from scratch; (b) all episodes as threads through ``LocalModel`` with
continuous batching, KV-cache reuse across turns and prompt-lookup drafts. Prints aggregate generated tokens/s, the
prompt tokens whose encoding the cache avoided, peak memory of each run, and the ratio, and checks
that the greedy outputs are identical. ``--no-cache`` adds a run batched without the cache and
``--no-draft`` one with the cache but no drafts, to show what each part contributes.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.llm.local.model import LocalModel  # noqa: E402

WORDS = "alpha beta gamma delta file test error value index table queue route cache merge branch".split()


def tool_output(rng: random.Random, words: int) -> str:
    return "\n".join(" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(words // 12))


def episode_turns(seed: int, turns: int) -> list[tuple[str, int]]:
    """(tool output appended before the turn, max new tokens) per turn, seeded per episode."""
    rng = random.Random(seed)
    return [(tool_output(rng, rng.randint(150, 300)), rng.randint(96, 160)) for _ in range(turns)]


def run_episode(model: LocalModel, seed: int, turns: int, outputs: list[str], usage: list,
                fixed: bool = False) -> None:
    messages = [{"role": "system", "content": "You are an agent. Describe what you see in the output."},
                {"role": "user", "content": f"Task {seed}: inspect the workspace and summarise the files."}]
    for observation, max_new in episode_turns(seed, turns):
        reply = model.chat(messages, None, max_tokens=max_new, min_tokens=max_new if fixed else None)
        outputs.append(reply.raw)
        usage.append(reply.usage)
        messages += [{"role": "assistant", "content": reply.raw.replace("<|im_end|>", "")},
                     {"role": "user", "content": f"Command output:\n{observation}"}]


class PeakRSS:
    """Samples this process's resident memory every 50 ms; ``peak_mb`` is the highest seen."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.is_set():
            with open("/proc/self/statm") as f:
                self.peak_mb = max(self.peak_mb, int(f.read().split()[1]) * page / 2**20)
            self._stop.wait(0.05)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_sequential(model: LocalModel, episodes: int, turns: int, fixed: bool):
    outputs: dict[int, list[str]] = {ep: [] for ep in range(episodes)}
    usage: list = []
    with PeakRSS() as rss:
        started = time.perf_counter()
        for ep in range(episodes):
            run_episode(model, ep, turns, outputs[ep], usage, fixed)
        seconds = time.perf_counter() - started
    return outputs, usage, seconds, rss.peak_mb


def run_concurrent(model: LocalModel, episodes: int, turns: int, fixed: bool):
    outputs: dict[int, list[str]] = {ep: [] for ep in range(episodes)}
    usage: list = []
    threads = [threading.Thread(target=run_episode, args=(model, ep, turns, outputs[ep], usage, fixed))
               for ep in range(episodes)]
    with PeakRSS() as rss:
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - started
    return outputs, usage, seconds, rss.peak_mb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/base")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--no-cache", action="store_true", help="also run batched without the KV cache")
    parser.add_argument("--no-draft", action="store_true",
                        help="also run batched with the KV cache but without prompt-lookup drafts")
    parser.add_argument("--fixed-length", action="store_true",
                        help="SYNTHETIC UPPER BOUND, not a workload any stage runs: every turn generates exactly "
                             "its 96-160 token budget (min_tokens = max_tokens, which no params field sets) instead "
                             "of ending at its own end-of-turn token, on a 15-word vocabulary with no tool schemas; "
                             "benchmarks/stages.py measures the stages' own episodes")
    args = parser.parse_args()

    runs = {}
    model = LocalModel(args.model, batching=False, max_context=16384).load()
    runs["one request at a time"] = run_sequential(model, args.episodes, args.turns, args.fixed_length)
    if args.no_cache:
        model = LocalModel(args.model, max_batch=args.episodes, max_context=16384, kv_cache_mb=0).load()
        runs["batched, no KV cache"] = run_concurrent(model, args.episodes, args.turns, args.fixed_length)
    if args.no_draft:
        model = LocalModel(args.model, max_batch=args.episodes, max_context=16384, draft_tokens=0).load()
        runs["batched + KV cache, no drafts"] = run_concurrent(model, args.episodes, args.turns, args.fixed_length)
    model = LocalModel(args.model, max_batch=args.episodes, max_context=16384).load()
    runs["batched + KV cache (backend)"] = run_concurrent(model, args.episodes, args.turns, args.fixed_length)
    batcher = model._batcher

    base_out, base_usage, base_s, _ = runs["one request at a time"]
    base_rate = sum(u.completion_tokens for u in base_usage) / base_s
    print(f"workload: {args.episodes} episodes x {args.turns} turns, "
          f"{sum(u.completion_tokens for u in base_usage)} generated tokens, "
          f"{sum(u.prompt_tokens for u in base_usage)} prompt tokens, greedy")
    print(f"{'mode':30s} {'seconds':>8s} {'gen tok/s':>10s} {'ratio':>6s} {'prefill avoided':>16s} "
          f"{'peak RSS MB':>12s} {'same output':>12s}")
    same_all = True
    for name, (outputs, usage, seconds, peak) in runs.items():
        rate = sum(u.completion_tokens for u in usage) / seconds
        cached = sum(u.cached_tokens for u in usage)
        same = outputs == base_out
        same_all &= same
        print(f"{name:30s} {seconds:8.1f} {rate:10.1f} {rate / base_rate:5.2f}x {cached:16d} {peak:12.0f} "
              f"{str(same):>12s}")
    # an episode's turns come one after another: no schedule decodes in fewer steps than its longest episode
    per_episode = [sum(u.completion_tokens for u in base_usage[ep * args.turns:(ep + 1) * args.turns])
                   for ep in range(args.episodes)]
    print(f"generated tokens per episode: {per_episode}; the longest, {max(per_episode)}, is the fewest "
          f"one-token decoding steps any batching needs")
    decoder = batcher.decoder
    print(f"decoding steps run by the backend: {batcher.steps}, rows per step: mean {batcher.mean_rows:.1f}, "
          f"max {batcher.max_rows}; draft tokens verified {decoder.drafted}, kept {decoder.accepted} "
          f"({decoder.accepted / max(decoder.drafted, 1):.0%})")
    print(f"greedy outputs identical: {same_all}")
    return 0 if same_all else 1


if __name__ == "__main__":
    raise SystemExit(main())
