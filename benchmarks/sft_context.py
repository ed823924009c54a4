"""Benchmark: one training step at long context, the sft stage's long-context setting against the plain one, on CPU.

    python benchmarks/sft_context.py                                   # 2k, 4k, 8k, 16k, 32k tokens, 2 layers
    python benchmarks/sft_context.py --lengths 2048,8192 --layers 1 --target-share 0.5

The model is the embedded model's shape (SmolLM2-135M: hidden 576, 9 heads, 3 KV heads, MLP 1536, its
tokenizer's 49,152-token vocabulary, tied embeddings) cut to ``--layers`` decoder layers and randomly
initialised, trained fully in fp32 with SDPA attention. The input is one sequence of random token ids;
``--target-share`` of its positions are targets, in runs of ``share x 1000`` tokens at the end of every
1,000 (assistant turns between tool outputs). One step is the forward and backward pass (no optimizer step:
its state does not grow with the length). Two configurations, each length in a fresh process:

* ``long``: the stage's long-context setting: gradient checkpointing on, the loss in chunks of
  ``--chunk`` target positions through the output layer (``pipelines.training.loss.ChunkedTargetLoss``),
  recomputed in backward;
* ``plain``: no checkpointing, the logits of every target position at once (``logits_to_keep`` and
  ``pipelines.training.loss.target_loss``, the path the stage takes with ``loss_chunk_tokens: 0``).

Memory is the process's peak RSS (``ru_maxrss``) at the end of the step minus its RSS just before it (model,
inputs and a 128-token warm-up step already in place): what the step itself added at its peak. tokens/s is
the sequence length over the step's wall-clock seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runnable from a checkout without installing

CONFIGS = ("long", "plain")


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def small_model(base: Path, layers: int, vocab: int):
    """The base model's config with ``layers`` decoder layers, randomly initialised in fp32."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(base)
    config.num_hidden_layers = layers
    config.vocab_size = vocab
    config.use_cache = False
    config.max_position_embeddings = max(config.max_position_embeddings, 131072)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=torch.float32)


def batch_of(length: int, vocab: int, share: float) -> dict:
    """Random token ids; the last ``share`` of every 1,000 positions are targets."""
    import torch

    from pipelines.training.data import IGNORE

    generator = torch.Generator().manual_seed(length)
    ids = torch.randint(0, vocab, (1, length), generator=generator)
    labels = torch.full_like(ids, IGNORE)
    for start in range(0, length, 1000):
        end = min(start + 1000, length)
        first = end - max(1, round(share * (end - start)))
        labels[0, first:end] = ids[0, first:end]
    return {"input_ids": ids, "labels": labels, "position_ids": torch.arange(length)[None]}


def step(model, batch: dict, loss_fn) -> float:
    from pipelines.training.loss import target_positions

    inputs = {k: v for k, v in batch.items() if k != "labels"}
    outputs = model(**inputs, logits_to_keep=target_positions(batch["labels"]))
    loss = loss_fn(outputs, batch["labels"])
    loss.backward()
    model.zero_grad(set_to_none=True)
    return float(loss)


def child(name: str, length: int, layers: int, share: float, chunk: int, base: Path) -> dict:
    import torch
    from transformers import AutoTokenizer

    from pipelines.training.loss import ChunkedTargetLoss, target_loss

    vocab = len(AutoTokenizer.from_pretrained(base))
    model = small_model(base, layers, vocab).train()
    if name == "long":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        loss_fn = ChunkedTargetLoss(model, chunk)
    else:
        loss_fn = target_loss
    step(model, batch_of(128, vocab, share), loss_fn)  # warm-up: kernels and allocator, far below the peak
    batch = batch_of(length, vocab, share)
    rss_before = current_rss_mb()
    started = time.perf_counter()
    loss = step(model, batch, loss_fn)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"config": name, "length": length, "targets": int((batch["labels"] != -100).sum()), "loss": loss,
            "seconds": seconds, "tokens_per_s": length / seconds, "rss_before_mb": rss_before,
            "peak_delta_mb": peak - rss_before, "params": sum(p.numel() for p in model.parameters()),
            "threads": torch.get_num_threads()}


def run_child(name: str, length: int, args, base: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", name, "--lengths", str(length), "--layers", str(args.layers),
           "--target-share", str(args.target_share), "--chunk", str(args.chunk), "--base", str(base)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        return {"config": name, "length": length, "failed": f"exit status {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="2048,4096,8192,16384,32768", help="comma-separated sequence lengths")
    parser.add_argument("--layers", type=int, default=2, help="decoder layers of the small model (default 2)")
    parser.add_argument("--target-share", type=float, default=0.25, help="share of positions that are targets")
    parser.add_argument("--chunk", type=int, default=4096, help="target positions per loss chunk (sft default 4096)")
    parser.add_argument("--only", choices=CONFIGS, help="run one configuration only")
    parser.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--base", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",") if x.strip()]
    if not lengths or min(lengths) < 256 or args.layers < 1 or not 0 < args.target_share <= 1 or args.chunk < 1:
        parser.error("need lengths >= 256, --layers >= 1, 0 < --target-share <= 1, --chunk >= 1")
    if args.child:
        print(json.dumps(child(args.child, lengths[0], args.layers, args.target_share, args.chunk, args.base)))
        return 0
    from benchmarks.sft import resolve_base

    with tempfile.TemporaryDirectory(prefix="sft-context-") as tmp:
        base, note = resolve_base(Path(tmp))
        print(f"base config and tokenizer: {base} ({note}); {args.layers} layers, fp32, sdpa; target share "
              f"{args.target_share}; loss chunk {args.chunk}; load average {os.getloadavg()[0]:.2f}; "
              f"{os.cpu_count()} CPUs", flush=True)
        rows = []
        for length in lengths:
            for name in CONFIGS if not args.only else (args.only,):
                rows.append(run_child(name, length, args, base))
                r = rows[-1]
                print(f"  {name} {length}: " + (r["failed"] if "failed" in r else
                      f"{r['seconds']:.1f} s, +{r['peak_delta_mb']:,.0f} MB"), flush=True)
    print_table(rows, lengths)
    return 0 if not any("failed" in r for r in rows) else 1


def print_table(rows: list[dict], lengths: list[int]) -> None:
    by = {(r["config"], r["length"]): r for r in rows}
    params = next((r["params"] for r in rows if "params" in r), 0)
    print(f"\nmodel parameters {params:,}; memory: peak RSS during the step minus RSS before it (MB)")
    header = (f"{'tokens':>7}{'targets':>9}{'long MB':>10}{'long tok/s':>12}{'plain MB':>10}{'plain tok/s':>13}"
              f"{'MB ratio':>10}{'speed ratio':>13}{'same loss':>11}")
    print(header)
    print("-" * len(header))
    for length in lengths:
        a, b = by.get(("long", length), {}), by.get(("plain", length), {})
        cell = lambda r, key, fmt: format(r[key], fmt) if key in r else "-"  # noqa: E731
        ratio = f"{a['peak_delta_mb'] / b['peak_delta_mb']:.2f}" if "peak_delta_mb" in a and "peak_delta_mb" in b \
            else "-"
        speed = f"{a['tokens_per_s'] / b['tokens_per_s']:.2f}" if "tokens_per_s" in a and "tokens_per_s" in b else "-"
        same = ("yes" if abs(a["loss"] - b["loss"]) < 1e-4 else "NO") if "loss" in a and "loss" in b else "-"
        targets = a.get("targets", b.get("targets", 0))
        print(f"{length:>7,}{targets:>9,}{cell(a, 'peak_delta_mb', ',.0f'):>10}{cell(a, 'tokens_per_s', ',.0f'):>12}"
              f"{cell(b, 'peak_delta_mb', ',.0f'):>10}{cell(b, 'tokens_per_s', ',.0f'):>13}{ratio:>10}{speed:>13}"
              f"{same:>11}")
    longs = [(r["length"], r["peak_delta_mb"]) for r in rows if r["config"] == "long" and "peak_delta_mb" in r]
    if len(longs) >= 2:
        print("long: MB per 1k tokens " + ", ".join(f"{1000 * mb / n:.0f} at {n:,}" for n, mb in longs))


if __name__ == "__main__":
    sys.exit(main())
