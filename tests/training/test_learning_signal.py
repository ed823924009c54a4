"""Does SFT teach anything that carries over to held-out tasks? A few real trajectories train the tiny model
through the sft stage's own path, and the model is scored on tasks it never saw; with the chat template's
generation marks moved onto the user turns (a broken loss mask) the same run must not improve the score.

- training data: the replay teacher works six drill tasks (``data/drills``, six families) through the real
  tools in bubblewrap, as collect does (agent system prompt, tool schemas, verified records);
- training: :func:`pipelines.training.run.run`, the sft stage's data loading, mask, packing and trainer
  (full fine-tuning, a few dozen steps at a high learning rate, seeded);
- held-out measure: the replay teacher's trajectories of easy-tier eval tasks (held out from training by
  design), scored teacher-forced on their assistant tokens, found by the test's own reading of the rendered
  text (not by the mask under test): the share the model predicts greedily (top-1 accuracy) and the mean
  negative log-likelihood. Labels shifted one token against the ids also fail it (accuracy 14% -> 8%).

Why not first-call validity from real eval trials: this random 2-layer model (hidden 64) needs far more
than a few dozen steps to emit a well-formed call (after 240 steps on these trajectories it still wrote
``{"name": "arguments": ...``), so both the trained and the broken run would score 0 there and the test could
not fail. The teacher-forced measure moves after a few steps and separates the two runs widely (``pytest -s``
prints the figures).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from pipelines.collection.episode import Collector
from pipelines.collection.plan import Job
from pipelines.core.params import parse_params
from pipelines.core.schema import Query
from pipelines.core.seeds import load_seed_tasks
from pipelines.evaluation.suites.common import EvalTask
from pipelines.evaluation.suites.easy import easy_solution_dir, load_easy
from pipelines.training.config import SFTParams
from pipelines.training.data import IGNORE, encode_sample
from pipelines.training.run import run
from tests.conftest import REPO

pytestmark = pytest.mark.needs_bwrap

#: six drills of six families (the easy tier's kind of task; data/drills)
TRAIN_SEEDS = ("drill-new-file-01", "drill-set-value-01", "drill-print-typo-01", "drill-run-record-01",
               "drill-shell-fact-01", "drill-menu-entry-01")
HELD_OUT = 4  # the first easy-tier tasks
PARAMS = SFTParams(method="full", max_steps=24, learning_rate=1e-2, warmup_ratio=0.0, batch_size=2, save_steps=1000,
                   seed=0)
#: the template's line for every turn but the assistant's; the broken template wraps it in generation marks
#: for user turns
OTHER_TURN = '{{- "<|im_start|>" + message.role + "\\n" + (message.content or "") + "<|im_end|>\\n" -}}'


def easy_query(task: EvalTask) -> Query:
    """Subtask 1 of an easy eval task as a query the replay teacher can solve (its reference solution)."""
    sub = task.subtasks[0]
    return Query.model_validate({
        "id": task.id, "source": "human", "domain": task.domain, "category": task.category, "query": sub.query,
        "workspace": task.workspace.model_dump(), "verifier": sub.verifier.model_dump(),
        "provenance": {"solution_dir": easy_solution_dir(task.id, 1).relative_to(REPO).as_posix()}})


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Train and score on one thread: on a busy 2-core machine two torch threads waiting on each other made
    these steps four times slower (measured: 24 steps in 42 s with two, about 10 s with one), same losses."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trajectories(tmp_path_factory) -> tuple[Path, list[dict]]:
    """The training file (six verified drill trajectories) and the held-out easy-tier trajectories."""
    collector = Collector(parse_params({"collect": {"sandbox": "bwrap"}}), REPO)
    seeds = {q.id: q for q in load_seed_tasks(REPO / "data" / "drills")}
    train = [collector.run(Job(seeds[name], "replay", f"train-{name}")) for name in TRAIN_SEEDS]
    held = [collector.run(Job(easy_query(task), "replay", f"held-{task.id}")) for task in load_easy()[:HELD_OUT]]
    assert all(r["meta"]["passed"] for r in train + held), [r["meta"]["task_id"] for r in train + held]
    assert {r["meta"]["task_id"] for r in train}.isdisjoint(r["meta"]["task_id"] for r in held)
    assert train[0]["messages"][0]["role"] == "system" and {t["function"]["name"] for t in train[0]["tools"]} >= \
        {"bash", "finish"}
    data = tmp_path_factory.mktemp("learning") / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in train))
    return data, held


def reference_targets(tokenizer, record: dict) -> tuple[list[int], list[int]]:
    """Token ids of ``record`` and the positions of its assistant turns' tokens, found without the code under
    test (neither :func:`encode_sample` nor the template's generation marks): each turn is the text that
    follows the prompt with the generation header, up to and including its end-of-turn token."""
    messages = [{**m, "content": m.get("content") or ""} for m in record["messages"]]
    render = lambda msgs, **kw: tokenizer.apply_chat_template(msgs, tools=record["tools"], tokenize=False, **kw)  # noqa: E731
    text = render(messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            start = len(render(messages[:i], add_generation_prompt=True))
            assert text.startswith(render(messages[:i], add_generation_prompt=True))
            spans.append((start, text.index("<|im_end|>", start) + len("<|im_end|>")))
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    positions = [k for k, (a, _) in enumerate(encoded["offset_mapping"]) if any(s <= a < e for s, e in spans)]
    return encoded["input_ids"], positions


def held_out_score(model_dir: Path, tokenizer, held: list[dict]) -> tuple[float, float]:
    """(top-1 accuracy in %, mean NLL in nats) of the model in ``model_dir`` predicting the assistant tokens
    of the ``held`` trajectories, each from everything before it (teacher-forced)."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    hits = count = 0
    nll = 0.0
    with torch.inference_mode():
        for record in held:
            ids, positions = reference_targets(tokenizer, record)
            logits = model(torch.tensor([ids])).logits[0].float()
            predict = torch.tensor(positions) - 1  # the logits at k - 1 predict token k
            targets = torch.tensor([ids[k] for k in positions])
            hits += int((logits[predict].argmax(-1) == targets).sum())
            count += len(positions)
            nll += float(F.cross_entropy(logits[predict], targets, reduction="sum"))
    return round(100 * hits / count, 2), round(nll / count, 3)


@pytest.fixture(scope="module")
def good_tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def base_score(tiny_model_dir, good_tokenizer, trajectories) -> tuple[float, float]:
    return held_out_score(tiny_model_dir, good_tokenizer, trajectories[1])


def user_marked_base(tiny_model_dir: Path, dest: Path) -> Path:
    """A copy of the tiny model whose template renders the same text with the generation marks (the loss
    mask) on the user turns instead of the assistant turns."""
    shutil.copytree(tiny_model_dir, dest)
    template = (dest / "chat_template.jinja").read_text()
    assert template.count("{%- generation -%}") == 1 and template.count(OTHER_TURN) == 1
    template = template.replace("{%- generation -%}", "").replace("{%- endgeneration -%}", "")
    template = template.replace(OTHER_TURN, '{%- if message.role == "user" -%}{%- generation -%}' + OTHER_TURN
                                + "{%- endgeneration -%}{%- else -%}" + OTHER_TURN + "{%- endif -%}")
    (dest / "chat_template.jinja").write_text(template)
    return dest


@pytest.mark.parametrize("marks", ["assistant", "user"])
def test_training_improves_held_out_prediction_only_with_the_assistant_mask(
        marks, tmp_path, tiny_model_dir, good_tokenizer, trajectories, base_score):
    data, held = trajectories
    base = tiny_model_dir if marks == "assistant" else user_marked_base(tiny_model_dir, tmp_path / "base")
    if marks == "user":  # the control differs in its mask alone: same text, labels on the user turns
        record = held[0]
        tokenizer = AutoTokenizer.from_pretrained(base)
        render = lambda tok: tok.apply_chat_template(record["messages"], tools=record["tools"], tokenize=False)  # noqa: E731
        assert render(tokenizer) == render(good_tokenizer)
        labels = [t for t in encode_sample(tokenizer, record)["labels"] if t != IGNORE]
        trained_text = tokenizer.decode(labels)
        assert record["meta"]["query"] in trained_text and "<tool_call>" not in trained_text
    metrics = run(data, base, tmp_path / "out", PARAMS, checkpoints=tmp_path / "ckpt", plots=None, metrics_file=None)
    accuracy, nll = held_out_score(tmp_path / "out", good_tokenizer, held)
    base_accuracy, base_nll = base_score
    print(f"\nheld-out assistant tokens, {len(held)} easy tasks; marks on {marks} turns, {metrics['steps']} steps, "
          f"{metrics['target_tokens']} target tokens, final loss {metrics['final_loss']:.3f}, "
          f"{metrics['train_seconds']:.0f} s: top-1 accuracy {base_accuracy:.1f}% -> {accuracy:.1f}%, NLL {base_nll:.2f} -> {nll:.2f} nats")
    assert base_accuracy < 3 and base_nll > 10  # random: about ln(vocabulary) = 10.8
    if marks == "assistant":
        assert accuracy >= base_accuracy + 8 and nll <= base_nll - 4
    else:  # the user turns teach token frequencies at most: a little NLL, almost no accuracy
        assert accuracy <= base_accuracy + 4 and nll >= base_nll - 2.5
