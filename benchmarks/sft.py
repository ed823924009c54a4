"""Benchmark: the sft stage's training configuration against TRL ``SFTTrainer``, default and tuned, on CPU.

    python benchmarks/sft.py                                  # 6 trajectories of 500-4,000 tokens, 1 epoch
    python benchmarks/sft.py --samples 4 --max-tokens 2000 --only stage,careful
    python benchmarks/sft.py --gpu-llama-1b [--peak-tflops 989]   # GPU only

Both sides train SmolLM2-135M (``models/base``, or the embedded model converted into a temp dir)
with LoRA r=16 on all linear layers, in fp32, on the same seeded synthetic multi-turn tool-use
trajectories (trajectory schema, tool outputs included), for the same number of epochs:

* baseline: TRL ``SFTTrainer`` with its defaults for a conversational dataset with tools: padding to
  the longest in the batch, no packing, gradient checkpointing on; ``assistant_only_loss=True`` so
  it learns the same tokens, batch size 2 so padding happens, ``max_length=None`` (the default 1024
  would truncate), ``bf16=False``. Tool-call arguments and tools are JSON strings in the dataset:
  Arrow would otherwise unify their schemas and the template would render the added nulls;
* careful: TRL ``SFTTrainer`` set up as a careful user would for this: ``padding_free=True``,
  ``assistant_only_loss=True``, ``gradient_checkpointing=False`` (a CPU step has memory to spare at these
  lengths), batch size 1, ``max_length=None``, ``bf16=False``: no padding and no recomputation, so what
  remains between it and the stage is TRL's loss over the logits of every position;
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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runnable from a checkout without installing

from benchmarks.sft_baselines import peak_rss_mb, run_baseline, run_stage  # noqa: E402
from benchmarks.sft_trajectories import build_trajectories  # noqa: E402

TARGET_SPEEDUP = 3.0
CONFIGS = ("baseline", "careful", "stage")
LABELS = {"baseline": "(a) TRL SFTTrainer defaults, bs 2", "careful": "(c) TRL tuned: padding-free, bs 1",
          "stage": "(b) training.trainer.train, bs 1"}


# ------------------------------------------------------------------ base model and CPU rate
def resolve_base(scratch: Path) -> tuple[Path, str]:
    """``models/base`` when it has the tool template, else the embedded model converted into ``scratch``."""
    base = REPO / "models" / "base"
    template = base / "chat_template.jinja"
    if (base / "config.json").exists() and template.exists() and "generation" in template.read_text():
        return base, "models/base"
    from pipelines.llm.convert import build_base_model
    from pipelines.llm.config import BaseModelParams

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
def child(name: str, work: Path, epochs: int) -> None:
    records = [json.loads(line) for line in (work / "trajectories.jsonl").read_text().splitlines()]
    base = Path((work / "base_dir").read_text())
    if name == "stage":
        result = run_stage(records, base, work, epochs)
    else:
        result = run_baseline(records, base, work, epochs, careful=name == "careful")
    result["peak_rss_mb"] = peak_rss_mb()
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
        padded = f"{r['padded_tokens']:,}" if name != "stage" else "-"
        print(f"{LABELS[name]:36}{n_samples:>8}{r['tokens']:>9,}{padded:>9}{r['target_tokens']:>9,}"
              f"{r['seconds']:>9.1f}{rate:>8.1f}{r['rss_before_loop_mb']:>11,.0f}{r['peak_rss_mb']:>9,.0f}"
              f"{gflops:>9.1f}{gflops / cpu_gflops:>7.1%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=6, help="trajectories (default 6)")
    parser.add_argument("--min-tokens", type=int, default=500, help="shortest trajectory, tokens (default 500)")
    parser.add_argument("--max-tokens", type=int, default=4000, help="longest trajectory, tokens (default 4000)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs on each side (default 1)")
    parser.add_argument("--only", help=f"comma-separated configurations to run ({', '.join(CONFIGS)})")
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
    only = [c.strip() for c in (args.only or "").split(",") if c.strip()]
    if any(c not in CONFIGS for c in only):
        parser.error(f"--only: choose from {', '.join(CONFIGS)}")
    args.only = [c for c in CONFIGS if c in only] or list(CONFIGS)
    return compare_on_cpu(args)


def compare_on_cpu(args) -> int:
    """Both configurations on the same synthetic trajectories, one process each; the table, notes and checks."""
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
        for name in args.only:
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
    print_notes(results, n_params, cpu_gflops)
    return 0 if check_results(results) else 1


def print_notes(results: dict[str, dict], n_params: int, cpu_gflops: float) -> None:
    """What the table's columns mean, and each side's load, CPU use and settings."""
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
                 if name != "stage" else "")
              + (f"; pipelines.training.trainer.train's own train_seconds {r['stage_train_seconds']:.1f}"
                 if name == "stage" else ""))


def check_results(results: dict[str, dict]) -> bool:
    """Print and return whether every side trained on the same tokens, tokenised alike; print the ratios of the
    stage (b) to each TRL configuration, (a) defaults and (c) tuned."""
    ok = True
    for name in ("baseline", "careful"):
        if name in results and results[name]["mismatched_samples"]:
            print(f"CHECK FAILED: {results[name]['mismatched_samples']} samples tokenised differently by TRL "
                  f"({name}) and encode_sample")
            ok = False
    b = results.get("stage")
    for name, label in (("baseline", "(a) defaults"), ("careful", "(c) tuned")):
        a = results.get(name)
        if a is None or b is None:
            continue
        same = a["tokens"] == b["tokens"] and a["target_tokens"] == b["target_tokens"]
        print(f"{label}: same tokens as the stage: {'yes' if same else 'NO'} ({a['tokens']:,} vs {b['tokens']:,} "
              f"non-padding, {a['target_tokens']:,} vs {b['target_tokens']:,} targets); every sample tokenised "
              f"identically by TRL and encode_sample: {'yes' if not a['mismatched_samples'] else 'NO'}")
        ok = ok and same
        speed = (b["tokens"] / b["seconds"]) / (a["tokens"] / a["seconds"])
        memory = b["peak_rss_mb"] / a["peak_rss_mb"]
        target = (f" (target >= {TARGET_SPEEDUP:.0f}x: {'met' if speed >= TARGET_SPEEDUP else 'NOT met'})"
                  if name == "baseline" else "")
        print(f"ratio (b)/{label[:3]}: tokens/s {speed:.2f}x{target}; peak RSS {memory:.2f}x "
              f"({b['peak_rss_mb']:,.0f} vs {a['peak_rss_mb']:,.0f} MB)")
    return ok


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
