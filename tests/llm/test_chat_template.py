"""The template in models/base renders tools and tool calls, round-trips, and marks assistant output."""

import copy

import pytest
from transformers import AutoTokenizer

from pipelines.llm.toolcalls import parse_chatml

TOOLS = [
    {"type": "function", "function": {"name": "bash", "description": "Run a shell command.",
                                      "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                                                     "required": ["command"]}}},
    {"type": "function", "function": {"name": "finish", "description": "Finish the task.",
                                      "parameters": {"type": "object", "properties": {"summary": {"type": "string"}},
                                                     "required": ["summary"]}}},
]
CONVERSATION = [
    {"role": "system", "content": "You are a careful engineer."},
    {"role": "user", "content": "Fix the failing test in calc.py."},
    {"role": "assistant", "content": "I will run the tests first.", "tool_calls": [
        {"id": "call_2_0", "type": "function", "function": {"name": "bash", "arguments": {"command": "pytest -q"}}}]},
    {"role": "tool", "tool_call_id": "call_2_0", "content": "1 failed: test_add (assert 1 + 1 == 3)"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_4_0", "type": "function", "function": {"name": "bash", "arguments": {"command": "cat calc.py"}}},
        {"id": "call_4_1", "type": "function", "function": {"name": "bash", "arguments": {"command": "ls -la"}}}]},
    {"role": "tool", "tool_call_id": "call_4_0", "content": "def add(a, b):\n    return a - b"},
    {"role": "tool", "tool_call_id": "call_4_1", "content": "calc.py\ntest_calc.py"},
    {"role": "user", "content": "Please also keep the docstring."},
    {"role": "assistant", "content": "Done: add() now returns a + b.", "tool_calls": [
        {"id": "call_8_0", "type": "function", "function": {"name": "finish", "arguments": {"summary": "fixed add"}}}]},
]


@pytest.fixture(scope="module")
def tokenizer(base_model_dir):
    return AutoTokenizer.from_pretrained(base_model_dir)


def test_round_trip(tokenizer):
    text = tokenizer.apply_chat_template(CONVERSATION, tools=TOOLS, tokenize=False)
    assert text.split("<|im_end|>", 1)[1].count("<tool_call>") == 4  # the system turn shows the format once
    messages, tools = parse_chatml(text)
    assert tools == TOOLS
    expected = copy.deepcopy(CONVERSATION)
    for msg in expected:
        msg.setdefault("content", "")
    assert messages == expected


def test_string_arguments_render_like_objects(tokenizer):
    as_string = copy.deepcopy(CONVERSATION[:3])
    as_string[2]["tool_calls"][0]["function"]["arguments"] = '{"command": "pytest -q"}'
    assert tokenizer.apply_chat_template(as_string, tools=TOOLS, tokenize=False) == \
        tokenizer.apply_chat_template(CONVERSATION[:3], tools=TOOLS, tokenize=False)


def test_generation_prompt_and_no_tools(tokenizer):
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n") and "# Tools" not in text


def test_assistant_mask_covers_exactly_assistant_output(tokenizer):
    out = tokenizer.apply_chat_template(CONVERSATION, tools=TOOLS, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    masked = tokenizer.decode([t for t, m in zip(ids, mask) if m])
    pieces = []
    for msg in CONVERSATION:
        if msg["role"] != "assistant":
            continue
        body = msg["content"]
        for k, call in enumerate(msg.get("tool_calls", [])):
            sep = "\n" if (body or k) else ""
            fn = call["function"]
            import json
            body += f'{sep}<tool_call>\n{{"name": "{fn["name"]}", "arguments": {json.dumps(fn["arguments"])}}}\n</tool_call>'
        pieces.append(body + "<|im_end|>")
    assert masked == "".join(pieces)
    unmasked = tokenizer.decode([t for t, m in zip(ids, mask) if not m])
    assert "Fix the failing test" in unmasked and "1 failed" in unmasked and "I will run" not in unmasked
