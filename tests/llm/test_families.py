"""Model families: each family's template renders its published format, marks exactly the assistant output
(plus GLM-4.5's hand-back token in training), its tool calls parse (malformed ones as format errors), the
family is recognised from the tokenizer, and base_model installs and records it."""

import copy
import json

import pytest
from transformers import AutoTokenizer

from pipelines.core.errors import ModelError
from pipelines.llm.families import (FAMILIES, detect_family, family_of, stop_token_ids, template_family,
                                    template_text)
from pipelines.llm.toolcalls import ParsedTurn, call_prefix, parse_assistant_text
from pipelines.training.data import IGNORE, encode_sample

# tokens each family's tokenizer has beyond the embedded model's (which has <|im_start|>, <|im_end|>, <|endoftext|>)
EXTRA = {
    "chatml": [],
    "qwen3": ["<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"],
    "glm45": ["[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"],
    "llama31": ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>",
                "<|python_tag|>"],
}
TOOLS = [{"type": "function", "function": {
    "name": "bash", "description": "Run a command.",
    "parameters": {"type": "object", "properties": {"command": {"type": "string"}, "timeout": {"type": "integer"}},
                   "required": ["command"]}}}]
CONVERSATION = [
    {"role": "system", "content": "Be careful."},
    {"role": "user", "content": "Fix calc.py."},
    {"role": "assistant", "content": "Running the tests.", "reasoning_content": "Tests first.", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": {"command": "pytest -q",
                                                                                     "timeout": 30}}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "1 failed"},
    {"role": "assistant", "content": "Fixed."},
]
TOOL_JSON = ('{"type": "function", "function": {"name": "bash", "description": "Run a command.", "parameters": '
             '{"type": "object", "properties": {"command": {"type": "string"}, "timeout": {"type": "integer"}}, '
             '"required": ["command"]}}}')

EXPECTED = {
    "chatml": (
        "<|im_start|>system\nBe careful.\n\n# Tools\n\nYou can call the functions described inside <tools></tools>:\n"
        "<tools>\n" + TOOL_JSON + "\n</tools>\n\nTo call a function, answer with a JSON object holding its name and "
        "arguments inside <tool_call></tool_call> tags:\n<tool_call>\n"
        '{"name": "function_name", "arguments": {"argument": "value"}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\nFix calc.py.<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nTests first.\n</think>\nRunning the tests.\n<tool_call>\n"
        '{"name": "bash", "arguments": {"command": "pytest -q", "timeout": 30}}\n</tool_call><|im_end|>\n'
        "<|im_start|>tool\n1 failed<|im_end|>\n"
        "<|im_start|>assistant\nFixed.<|im_end|>\n"),
    "qwen3": (
        "<|im_start|>system\nBe careful.\n\n# Tools\n\nYou may call one or more functions to assist with the user "
        "query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        + TOOL_JSON + "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
        "within <tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\nFix calc.py.<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nTests first.\n</think>\n\nRunning the tests.\n<tool_call>\n"
        '{"name": "bash", "arguments": {"command": "pytest -q", "timeout": 30}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\n1 failed\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\nFixed.<|im_end|>\n"),
    "glm45": (
        "[gMASK]<sop><|system|>\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" + TOOL_JSON +
        "\n</tools>\n\nFor each function call, output the function name and arguments within the following XML "
        "format:\n<tool_call>{function-name}\n<arg_key>{arg-key-1}</arg_key>\n<arg_value>{arg-value-1}</arg_value>\n"
        "<arg_key>{arg-key-2}</arg_key>\n<arg_value>{arg-value-2}</arg_value>\n...\n</tool_call>"
        "<|system|>\nBe careful.<|user|>\nFix calc.py."
        "<|assistant|>\n<think>Tests first.</think>\nRunning the tests.\n<tool_call>bash\n"
        "<arg_key>command</arg_key>\n<arg_value>pytest -q</arg_value>\n<arg_key>timeout</arg_key>\n"
        "<arg_value>30</arg_value>\n</tool_call>"
        "<|observation|>\n<tool_response>\n1 failed\n</tool_response>"
        "<|assistant|>\n<think></think>\nFixed."),
    "llama31": (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe careful.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please respond with a JSON for "
        "a function call with its proper arguments that best answers the given prompt.\n\nRespond in the format "
        '{"name": function name, "parameters": dictionary of argument name and its value}.Do not use variables.\n\n'
        + json.dumps(TOOLS[0], indent=4) + "\n\nFix calc.py.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nRunning the tests.\n"
        '{"name": "bash", "parameters": {"command": "pytest -q", "timeout": 30}}<|eot_id|>'
        '<|start_header_id|>ipython<|end_header_id|>\n\n"1 failed"<|eot_id|>'
        "<|start_header_id|>assistant<|end_header_id|>\n\nFixed.<|eot_id|>"),
}
# what the template's generation marks cover, turn after turn
ASSISTANT = {
    "chatml": ['<think>\nTests first.\n</think>\nRunning the tests.\n<tool_call>\n{"name": "bash", "arguments": '
               '{"command": "pytest -q", "timeout": 30}}\n</tool_call><|im_end|>', "Fixed.<|im_end|>"],
    "qwen3": ['<think>\nTests first.\n</think>\n\nRunning the tests.\n<tool_call>\n{"name": "bash", "arguments": '
              '{"command": "pytest -q", "timeout": 30}}\n</tool_call><|im_end|>',
              "<think>\n\n</think>\n\nFixed.<|im_end|>"],
    "glm45": ["\n<think>Tests first.</think>\nRunning the tests.\n<tool_call>bash\n<arg_key>command</arg_key>\n"
              "<arg_value>pytest -q</arg_value>\n<arg_key>timeout</arg_key>\n<arg_value>30</arg_value>\n</tool_call>",
              "\n<think></think>\nFixed."],
    "llama31": ['Running the tests.\n{"name": "bash", "parameters": {"command": "pytest -q", "timeout": 30}}<|eot_id|>',
                "Fixed.<|eot_id|>"],
}
# what training puts the loss on: GLM-4.5 adds the token that hands each turn back
TRAINED = {**ASSISTANT, "glm45": [ASSISTANT["glm45"][0] + "<|observation|>", ASSISTANT["glm45"][1] + "<|endoftext|>"]}
PROMPT_END = {"chatml": "<|im_start|>assistant\n", "qwen3": "<|im_start|>assistant\n", "glm45": "<|assistant|>",
              "llama31": "<|start_header_id|>assistant<|end_header_id|>\n\n"}


_BASE: dict = {}


def family_tokenizer(base_model_dir, family: str, template: bool = True):
    """The embedded model's tokenizer with ``family``'s special tokens added (and its template)."""
    if base_model_dir not in _BASE:
        _BASE[base_model_dir] = AutoTokenizer.from_pretrained(base_model_dir)
    tok = copy.deepcopy(_BASE[base_model_dir])
    if EXTRA[family]:
        tok.add_special_tokens({"additional_special_tokens": EXTRA[family]})
    if template:
        tok.chat_template = template_text(family)
    return tok


@pytest.fixture(scope="module")
def tokenizers(base_model_dir):
    return {family: family_tokenizer(base_model_dir, family) for family in FAMILIES}


def _runs(tok, ids, mask) -> list[str]:
    """The text of each run of masked tokens."""
    runs, current = [], []
    for t, m in zip(ids, mask):
        if m:
            current.append(t)
        elif current:
            runs.append(tok.decode(current))
            current = []
    if current:
        runs.append(tok.decode(current))
    return runs


@pytest.mark.parametrize("family", list(FAMILIES))
def test_render_is_the_family_format(tokenizers, family):
    tok = tokenizers[family]
    assert tok.apply_chat_template(CONVERSATION, tools=TOOLS, tokenize=False) == EXPECTED[family]
    prompt = tok.apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith(PROMPT_END[family]) and "Tools" not in prompt and "functions" not in prompt


@pytest.mark.parametrize("family", list(FAMILIES))
def test_mask_covers_exactly_the_assistant_output(tokenizers, family):
    tok = tokenizers[family]
    out = tok.apply_chat_template(CONVERSATION, tools=TOOLS, tokenize=True, return_dict=True,
                                  return_assistant_tokens_mask=True)
    assert _runs(tok, out["input_ids"], out["assistant_masks"]) == ASSISTANT[family]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_encode_sample_round_trip(tokenizers, family):
    """The ids decode to the rendered text (GLM-4.5: plus <|endoftext|> closing the last turn); the labels
    are the trained runs: the assistant output and, for GLM-4.5, the token that hands each turn back."""
    tok = tokenizers[family]
    enc = encode_sample(tok, {"messages": CONVERSATION, "tools": TOOLS})
    tail = "<|endoftext|>" if family == "glm45" else ""
    assert tok.decode(enc["input_ids"]) == EXPECTED[family] + tail
    kept = [t != IGNORE for t in enc["labels"]]
    assert _runs(tok, enc["input_ids"], kept) == TRAINED[family]
    assert all(l in (IGNORE, t) for t, l in zip(enc["input_ids"], enc["labels"]))


def test_glm_user_turn_hands_back_too(tokenizers):
    tok = tokenizers["glm45"]
    talk = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "bye"}]
    enc = encode_sample(tok, {"messages": talk})
    kept = [t != IGNORE for t in enc["labels"]]
    assert _runs(tok, enc["input_ids"], kept) == ["\n<think></think>\nHello.<|user|>"]
    assert tok.decode(enc["input_ids"]).endswith("<|user|>\nbye")  # nothing appended after a user turn


def test_reasoning_only_after_the_last_query(tokenizers):
    """Qwen3 and GLM-4.5 drop the reasoning of turns before the last user query, as their templates do."""
    talk = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "A", "reasoning_content": "r1"},
            {"role": "user", "content": "b"}, {"role": "assistant", "content": "B", "reasoning_content": "r2"}]
    assert tokenizers["qwen3"].apply_chat_template(talk, tokenize=False) == (
        "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n<|im_start|>user\nb<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nr2\n</think>\n\nB<|im_end|>\n")
    assert tokenizers["glm45"].apply_chat_template(talk, tokenize=False) == (
        "[gMASK]<sop><|user|>\na<|assistant|>\n<think></think>\nA<|user|>\nb<|assistant|>\n<think>r2</think>\nB")


def test_consecutive_tool_results_share_a_turn(tokenizers):
    talk = [{"role": "user", "content": "go"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "bash", "arguments": {"command": "a"}}},
                {"function": {"name": "bash", "arguments": {"command": "b"}}}]},
            {"role": "tool", "content": "A"}, {"role": "tool", "content": "B"}]
    qwen = tokenizers["qwen3"].apply_chat_template(talk, tokenize=False)
    assert qwen.endswith('</tool_call>\n<tool_call>\n{"name": "bash", "arguments": {"command": "b"}}\n</tool_call>'
                         "<|im_end|>\n<|im_start|>user\n<tool_response>\nA\n</tool_response>\n<tool_response>\nB\n"
                         "</tool_response><|im_end|>\n")
    glm = tokenizers["glm45"].apply_chat_template(talk, tokenize=False)
    assert glm.endswith("</tool_call>\n<tool_call>bash\n<arg_key>command</arg_key>\n<arg_value>b</arg_value>\n"
                        "</tool_call><|observation|>\n<tool_response>\nA\n</tool_response>\n<tool_response>\nB\n"
                        "</tool_response>")


# ---------------------------------------------------------------- parsing
def _assistant_text(tok, message) -> str:
    """The text a model of this family generates for ``message`` (what the marks cover)."""
    out = tok.apply_chat_template([{"role": "user", "content": "q"}, message], tools=TOOLS, tokenize=True,
                                  return_dict=True, return_assistant_tokens_mask=True)
    return "".join(_runs(tok, out["input_ids"], out["assistant_masks"]))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_parse_what_the_family_renders(tokenizers, family):
    message = copy.deepcopy(CONVERSATION[2])
    message["tool_calls"].append({"function": {"name": "bash", "arguments": {"command": "ls", "timeout": 5}}})
    text = _assistant_text(tokenizers[family], message)
    parsed = parse_assistant_text(text, family, TOOLS)
    assert parsed.error is None
    assert [c["function"] for c in parsed.tool_calls] == [c["function"] for c in message["tool_calls"]]
    assert parsed.content == "Running the tests."
    assert parsed.reasoning == (None if family == "llama31" else "Tests first.")
    plain = parse_assistant_text(_assistant_text(tokenizers[family], CONVERSATION[4]), family)
    assert plain.content == "Fixed." and plain.tool_calls == [] and plain.error is None


def test_glm_values_follow_the_schema():
    text = ("<tool_call>bash\n<arg_key>command</arg_key>\n<arg_value>42</arg_value>\n<arg_key>timeout</arg_key>\n"
            "<arg_value>30</arg_value>\n<arg_key>env</arg_key>\n<arg_value>{\"A\": 1}</arg_value>\n</tool_call>")
    args = parse_assistant_text(text, "glm45", TOOLS).tool_calls[0]["function"]["arguments"]
    assert args == {"command": "42", "timeout": 30, "env": {"A": 1}}  # a string parameter stays text
    assert parse_assistant_text(text, "glm45").tool_calls[0]["function"]["arguments"]["command"] == 42


MALFORMED = {
    "chatml": [('<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}\n</tool_call>', "not valid JSON"),
               ('<tool_call>\n{"name": "bash", "arguments": {}}', "not closed"),
               ('<tool_call>\n{"arguments": {}}\n</tool_call>', "JSON object like"),
               ("done</tool_call>", "without a matching")],
    "qwen3": [('<think>\nx\n</think>\n\n<tool_call>\n["bash"]\n</tool_call>', "JSON object like")],
    "glm45": [("<tool_call>\n<arg_key>command</arg_key>\n<arg_value>ls</arg_value>\n</tool_call>", "function name"),
              ("<tool_call>bash\n<arg_key>command</arg_key>\n<arg_value>ls\n</tool_call>", "pairs"),
              ("<tool_call>bash\ncommand=ls\n</tool_call>", "function name"),
              ("<tool_call>bash\n<arg_key>command</arg_key>\n<arg_value>ls</arg_value>", "not closed"),
              ("text</tool_call>", "without a matching")],
    "llama31": [('{"name": "bash", "parameters": {"command": "ls"}', "not valid JSON"),
                ('{"name": "bash", "parameters": ["ls"]}', "must be a JSON object"),
                ('{"name": "bash", "parameters": {"command": "ls"}} and then', "text after a tool call"),
                ('{"name": 3, "parameters": {}}', "JSON object like")],
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_malformed_calls_are_format_errors(family, tokenizers):
    for text, message in MALFORMED[family]:
        parsed = parse_assistant_text(text, family, TOOLS)
        assert isinstance(parsed, ParsedTurn) and parsed.error and message in parsed.error, (text, parsed)
    # no prefix of a well-formed turn (what a cut-off generation leaves) raises
    message = copy.deepcopy(CONVERSATION[2])
    full = _assistant_text(tokenizers[family], message)
    for n in range(len(full) + 1):
        assert isinstance(parse_assistant_text(full[:n], family, TOOLS), ParsedTurn)


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown tool-call format"):
        parse_assistant_text("x", "mistral")


def test_call_prefixes_parse_once_completed():
    """The text forced for tool_choice opens a call the family's parser reads once the model completes it."""
    endings = {"chatml": 'ls"}}\n</tool_call>', "qwen3": 'ls"}}\n</tool_call>',
               "glm45": "<arg_key>command</arg_key>\n<arg_value>ls</arg_value>\n</tool_call>", "llama31": 'ls"}}'}
    for family, ending in endings.items():
        text = call_prefix(family, "bash") + ('"command": "' if family != "glm45" else "") + ending
        parsed = parse_assistant_text(text, family, TOOLS)
        assert parsed.error is None and parsed.tool_calls[0]["function"] == {"name": "bash",
                                                                            "arguments": {"command": "ls"}}, family


# ---------------------------------------------------------------- detection and recording
def test_family_is_detected_from_special_tokens(base_model_dir):
    for family in FAMILIES:
        tok = family_tokenizer(base_model_dir, family, template=False)
        assert detect_family(tok) == family
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    bare = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, "[UNK]")),
                                   unk_token="[UNK]")
    assert detect_family(bare) is None


def test_family_is_recorded_by_the_template(base_model_dir, tokenizers):
    for family, tok in tokenizers.items():
        assert template_family(tok.chat_template) == family == family_of(tok)
    # the template decides over the tokens: the project's ChatML on a Qwen3 tokenizer is parsed as ChatML
    qwen = family_tokenizer(base_model_dir, "qwen3", template=False)
    qwen.chat_template = template_text("chatml")
    assert family_of(qwen) == "chatml"
    # a template of the model's own is read by the tokens
    qwen.chat_template = "{{ messages }}"
    assert family_of(qwen) == "qwen3"


def test_stop_tokens(tokenizers):
    names = {f: tokenizers[f].convert_ids_to_tokens(stop_token_ids(tokenizers[f], f)) for f in FAMILIES}
    assert names == {"chatml": ["<|im_end|>"], "qwen3": ["<|im_end|>"],
                     "glm45": ["<|user|>", "<|observation|>", "<|endoftext|>"],
                     "llama31": ["<|eot_id|>", "<|eom_id|>"]}


def test_default_template_is_unchanged(base_model_dir):
    """'tools' installs the project's ChatML template: the embedded model's saved template is its text."""
    assert AutoTokenizer.from_pretrained(base_model_dir).chat_template == template_text("chatml")


# ---------------------------------------------------------------- base_model and the backends
@pytest.fixture(scope="module")
def glm_source(tmp_path_factory, base_model_dir):
    """A local Hugging Face directory: a tiny random Llama with a GLM-4.5 tokenizer and no chat template; its
    final norm is zero, so greedy decoding always picks token 0 (<|endoftext|>, a GLM-4.5 stop token) unless
    stop tokens are held back, and then token 1."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    src = tmp_path_factory.mktemp("glm_src")
    tok = family_tokenizer(base_model_dir, "glm45", template=False)
    tok.chat_template = None
    assert tok.convert_ids_to_tokens(0) == "<|endoftext|>"
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.model.norm.weight.zero_()
    model.save_pretrained(src)
    tok.save_pretrained(src)
    return src


def test_auto_installs_and_records_the_family(tmp_path, glm_source):
    from pipelines.llm.config import BaseModelParams
    from pipelines.llm.convert import build_base_model
    from pipelines.llm.local.model import LocalModel

    out = tmp_path / "base"
    build_base_model(BaseModelParams(source=str(glm_source), chat_template="auto"), out, root=tmp_path)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template == template_text("glm45") and family_of(tok) == "glm45"
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["eos_token_id"] == stop_token_ids(tok, "glm45")

    for batching in (True, False):  # the running batch and model.generate alone stop at any GLM-4.5 stop token
        local = LocalModel(out, device="cpu", batching=batching, packed_gemm=False).load()
        assert local.family == "glm45"
        assert local.render([{"role": "user", "content": "hi"}]).endswith("<|user|>\nhi<|assistant|>")
        first = local.chat([{"role": "user", "content": "hi"}], max_tokens=5)
        assert first.raw == "<|endoftext|>" and first.finish_reason == "stop" and first.usage.completion_tokens == 1
        held = local.chat([{"role": "user", "content": "hi"}], max_tokens=6, min_tokens=3)
        assert held.usage.completion_tokens == 4 and held.finish_reason == "stop", held
        forced = local.chat([{"role": "user", "content": "hi"}], tools=TOOLS, max_tokens=2,
                            tool_choice={"type": "function", "function": {"name": "bash"}})
        assert forced.raw.startswith("\n<think></think>\n<tool_call>bash\n")
        assert forced.format_error and "not closed" in forced.format_error


def test_family_choice_needs_its_tokens(tmp_path, base_model_dir):
    from pipelines.llm.config import BaseModelParams
    from pipelines.llm.convert import build_base_model

    with pytest.raises(ModelError, match="lacks the llama31 tokens <.begin_of_text.>") as info:
        build_base_model(BaseModelParams(source=str(base_model_dir), chat_template="llama31"), tmp_path / "x",
                         root=tmp_path)
    assert "\n" not in str(info.value) and not (tmp_path / "x").exists()


def test_openai_backend_parses_the_family_markup(monkeypatch):
    from pipelines.llm.openai_backend import OpenAIModel
    from tests.llm.test_openai_backend import Endpoint, completion

    monkeypatch.setenv("TEST_LLM_KEY", "k")
    endpoint = Endpoint()
    try:
        endpoint.plan = [(200, completion("<think>plan</think>\nLooking.\n<tool_call>bash\n<arg_key>command"
                                          "</arg_key>\n<arg_value>ls</arg_value>\n</tool_call>"), {}),
                         (200, completion('{"name": "bash", "parameters": {"command": "ls", "timeout": 5}}'), {})]
        answers = []
        for parser in ("glm45", "llama31"):
            remote = OpenAIModel("m", base_url=endpoint.url, api_key_env="TEST_LLM_KEY", max_retries=0,
                                 tool_call_parser=parser)
            answers.append(remote.chat([{"role": "user", "content": "ls"}], TOOLS))
        glm, llama = answers
        assert glm.message["tool_calls"][0]["function"] == {"name": "bash", "arguments": {"command": "ls"}}
        assert glm.message["content"] == "Looking." and glm.message["reasoning_content"] == "plan"
        assert llama.message["tool_calls"][0]["function"] == {"name": "bash",
                                                              "arguments": {"command": "ls", "timeout": 5}}
    finally:
        endpoint.close()
    with pytest.raises(ModelError, match="tool_call_parser must be one of hermes, chatml, qwen3, glm45, llama31"):
        OpenAIModel("m", base_url=endpoint.url, api_key_env="TEST_LLM_KEY", tool_call_parser="mistral")
