"""The local backend on the real embedded model (converted once per session)."""

import pytest

from pipelines.core.errors import ModelError
from pipelines.llm.base import ContextLengthError
from pipelines.core.params import speed_only_keys
from pipelines.llm.local.model import LocalModel

BASH = {"type": "function", "function": {"name": "bash", "description": "Run a shell command in the workspace.",
                                         "parameters": {"type": "object",
                                                        "properties": {"command": {"type": "string"}},
                                                        "required": ["command"]}}}
ASK = [{"role": "user", "content": "List the files in the current directory."}]


@pytest.fixture(scope="module")
def model(base_model_dir):
    return LocalModel(base_model_dir, sampling={"max_tokens": 48}).load()


def test_generates_a_parsed_tool_call(model):
    reply = model.chat(ASK, [BASH], tool_choice="required", parallel_tool_calls=False)
    assert reply.format_error is None, reply.raw
    assert len(reply.tool_calls) == 1
    call = reply.tool_calls[0]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert isinstance(call["function"]["name"], str) and isinstance(call["function"]["arguments"], dict)
    assert reply.usage.prompt_tokens > 50 and 0 < reply.usage.completion_tokens <= 48


def test_greedy_is_deterministic(model):
    first = model.chat(ASK, None, max_tokens=16)
    second = model.chat(ASK, None, max_tokens=16)
    assert first.raw == second.raw and first.tool_calls == []


def test_named_tool_choice_forces_that_function(model):
    reply = model.chat(ASK, [BASH], tool_choice={"type": "function", "function": {"name": "bash"}},
                       parallel_tool_calls=False, max_tokens=40)
    assert reply.raw.startswith('<tool_call>\n{"name": "bash", "arguments": {')
    # a tiny model may still botch the JSON: that must come back as a format error, never an exception
    assert reply.tool_calls or reply.format_error


def test_context_limit(base_model_dir):
    small = LocalModel(base_model_dir, max_context=64)
    with pytest.raises(ContextLengthError, match="exceeds the context"):
        small.chat(ASK * 10, [BASH])


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="model directory not found"):
        LocalModel(tmp_path / "nope").load()


def test_directory_without_tokenizer(tmp_path, base_model_dir):
    (tmp_path / "config.json").write_text((base_model_dir / "config.json").read_text())
    with pytest.raises(ModelError, match="no tokenizer"):
        LocalModel(tmp_path).load()


PROMPTS = ["List the files in the current directory.", "Write one sentence about unit tests.",
           "What is 2 + 2?", "Name a sorting algorithm and explain it in detail."]


def test_concurrent_requests_are_batched_and_identical_to_alone(base_model_dir):
    import threading

    alone_model = LocalModel(base_model_dir, sampling={"max_tokens": 24}, batching=False).load()
    alone = [alone_model.chat([{"role": "user", "content": p}], [BASH] if i % 2 else None).raw
             for i, p in enumerate(PROMPTS)]
    batched_model = LocalModel(base_model_dir, sampling={"max_tokens": 24}).load()
    out: dict[int, object] = {}
    gate = threading.Barrier(len(PROMPTS))

    def ask(i: int) -> None:
        gate.wait()
        out[i] = batched_model.chat([{"role": "user", "content": PROMPTS[i]}], [BASH] if i % 2 else None)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [out[i].raw for i in range(len(PROMPTS))] == alone
    assert batched_model._batcher.max_rows > 1 and max(out[i].usage.batch_size for i in out) > 1


def test_batched_stop_at_tool_call_end_matches_alone(base_model_dir):
    import threading

    kwargs = dict(tool_choice="required", parallel_tool_calls=False)
    alone_model = LocalModel(base_model_dir, sampling={"max_tokens": 40}, batching=False).load()
    alone = [alone_model.chat([{"role": "user", "content": p}], [BASH], **kwargs).raw for p in PROMPTS[:2]]
    batched_model = LocalModel(base_model_dir, sampling={"max_tokens": 40}).load()
    out: dict[int, str] = {}
    gate = threading.Barrier(2)

    def ask(i: int) -> None:
        gate.wait()
        out[i] = batched_model.chat([{"role": "user", "content": PROMPTS[i]}], [BASH], **kwargs).raw

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [out[0], out[1]] == alone


def test_first_calls_from_many_threads_load_once(tiny_model_dir):
    import threading

    model = LocalModel(tiny_model_dir, sampling={"max_tokens": 4})
    gate, results = threading.Barrier(4), []

    def ask() -> None:
        gate.wait()
        results.append(model.chat([{"role": "user", "content": "hi"}], None))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and model._batcher.admitted == 4


def converse(model, opening: str, turns: int, max_tokens: int) -> list:
    """An agent-like conversation: each turn appends the answer and a tool-style observation."""
    messages = [{"role": "user", "content": opening}]
    replies = []
    for turn in range(turns):
        reply = model.chat(messages, [BASH], max_tokens=max_tokens)
        replies.append(reply)
        messages += [{"role": "assistant", "content": reply.raw.replace("<|im_end|>", "")},
                     {"role": "user", "content": f"Command output {turn}:\nREADME.md setup.py src tests"}]
    return replies


def test_cached_turns_are_identical_to_generating_from_scratch(base_model_dir):
    import threading

    alone_model = LocalModel(base_model_dir, batching=False).load()
    alone = [[r.raw for r in converse(alone_model, p, 3, 16)] for p in PROMPTS[:2]]
    cached_model = LocalModel(base_model_dir).load()
    out: dict[int, list] = {}
    gate = threading.Barrier(2)

    def run(i: int) -> None:
        gate.wait()
        out[i] = converse(cached_model, PROMPTS[i], 3, 16)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [[r.raw for r in out[i]] for i in range(2)] == alone
    for replies in out.values():
        first, *later = [r.usage for r in replies]
        # later turns re-read only what is new: most of the prompt comes from the cache
        assert all(u.cached_tokens > u.prompt_tokens // 2 for u in later), [u.to_dict() for u in later]
        assert first.cached_tokens < first.prompt_tokens
    assert cached_model._batcher.max_rows > 1


def test_a_model_outside_the_cached_path_gives_the_same_answers(tiny_model_dir):
    from transformers import AutoConfig

    from pipelines.llm.local.decoder import supported

    config = AutoConfig.from_pretrained(tiny_model_dir)
    assert supported(config)
    config.layer_types = ["sliding_attention"] * config.num_hidden_layers
    assert not supported(config)
    fast = LocalModel(tiny_model_dir, sampling={"max_tokens": 8}).load()
    plain = LocalModel(tiny_model_dir, sampling={"max_tokens": 8}).load()
    plain._fast_path = False  # what load() decides for such a model
    for model in (fast, plain):
        model.chat(ASK, None)
    again = [m.chat(ASK, None) for m in (fast, plain)]
    assert again[0].raw == again[1].raw
    assert again[0].usage.cached_tokens > 0 and again[1].usage.cached_tokens == 0


@pytest.mark.parametrize("broken", ["config.json", "model.safetensors"])
def test_a_corrupt_model_file_is_one_clear_error(tmp_path, tiny_model_dir, broken):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    (copy / broken).write_bytes((copy / broken).read_bytes()[:40])  # cut short, as by a full disk
    with pytest.raises(ModelError, match=r"cannot load the model .*dvc repro base_model"):
        LocalModel(copy).load()


# each speed-only setting away from its default, alone and together; {} is the defaults
SPEED_SETTINGS = {
    "defaults": {},
    "one_row": {"max_batch": 1},
    "three_rows": {"max_batch": 3},
    "no_kv_cache": {"kv_cache_mb": 0},
    "no_packed_gemm": {"packed_gemm": False},
    "no_drafts": {"draft_tokens": 0},
    "longest_drafts": {"draft_tokens": 7},
    "all_off": {"max_batch": 1, "kv_cache_mb": 0, "packed_gemm": False, "draft_tokens": 0},
}


def test_every_speed_only_param_is_varied_below():
    # the keys marked speed-only are left out of the stages' DVC params: each must be proven output-neutral here
    assert {knob for knobs in SPEED_SETTINGS.values() for knob in knobs} == speed_only_keys("llm.models.local")


@pytest.fixture(scope="module")
def lively_model_dir(tmp_path_factory, tiny_model_dir):
    """The tiny model with weights of standard deviation 0.12: its greedy replies mix varied tokens with
    repeats (drafts get kept), where the stock initialisation repeats one token, which any decoder gets right."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("lively")
    shutil.copytree(tiny_model_dir, out, dirs_exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for weight in model.parameters():
            if weight.dim() > 1:
                weight.copy_(torch.randn(weight.shape, generator=gen) * 0.12)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def lively_conversations_alone(lively_model_dir):
    """Two-turn conversations generated one request at a time by ``model.generate``: the reference."""
    alone = LocalModel(lively_model_dir, sampling={"max_tokens": 24}, batching=False).load()
    replies = [converse(alone, p, 2, 24) for p in PROMPTS]
    assert all(len(set(alone.tokenizer(r.raw).input_ids)) > 5 for turns in replies for r in turns)
    return [[r.raw for r in turns] for turns in replies]


@pytest.mark.parametrize("knobs", list(SPEED_SETTINGS.values()), ids=list(SPEED_SETTINGS))
def test_speed_only_settings_leave_greedy_replies_unchanged(lively_model_dir, lively_conversations_alone, knobs):
    """Speed-only settings change how replies are computed (rows per step, cached prefixes, packed
    products, drafts), never their tokens: concurrent multi-turn conversations equal ``generate`` alone."""
    import threading

    model = LocalModel(lively_model_dir, sampling={"max_tokens": 24}, **knobs).load()
    out: dict[int, list] = {}
    gate = threading.Barrier(len(PROMPTS))

    def run(i: int) -> None:
        gate.wait()
        out[i] = converse(model, PROMPTS[i], 2, 24)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [[r.raw for r in out[i]] for i in range(len(PROMPTS))] == lively_conversations_alone
    # the setting was in force: rows per step, prefixes from the cache, drafts kept
    assert 1 <= model._batcher.max_rows <= model.max_batch
    assert any(r.usage.cached_tokens for turns in out.values() for r in turns) == (model.kv_cache_mb > 0)
    assert (model._batcher.decoder.accepted > 0) == (model.draft_tokens > 0)
