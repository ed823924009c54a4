from pipelines.llm.toolcalls import parse_assistant_text, render_tool_call


def test_plain_text_has_no_calls():
    parsed = parse_assistant_text("Hello there.<|im_end|>")
    assert parsed.content == "Hello there." and parsed.tool_calls == [] and parsed.error is None


def test_text_then_two_calls():
    text = "Let me look.\n" + render_tool_call("bash", {"command": "ls"}) + "\n" + render_tool_call(
        "read_file", {"path": "a.py", "start_line": 1})
    parsed = parse_assistant_text(text)
    assert parsed.content == "Let me look."
    assert [c["function"]["name"] for c in parsed.tool_calls] == ["bash", "read_file"]
    assert parsed.tool_calls[1]["function"]["arguments"] == {"path": "a.py", "start_line": 1}


def test_string_encoded_arguments_are_decoded():
    parsed = parse_assistant_text('<tool_call>\n{"name": "bash", "arguments": "{\\"command\\": \\"ls\\"}"}\n</tool_call>')
    assert parsed.tool_calls[0]["function"]["arguments"] == {"command": "ls"}


def test_malformed_json_is_an_error_not_an_exception():
    parsed = parse_assistant_text('<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}\n</tool_call>')
    assert parsed.error and "not valid JSON" in parsed.error


def test_unclosed_block():
    parsed = parse_assistant_text('<tool_call>\n{"name": "bash", "arguments": {}}')
    assert parsed.error and "not closed" in parsed.error


def test_arguments_must_be_an_object():
    parsed = parse_assistant_text('<tool_call>\n{"name": "bash", "arguments": 1}\n</tool_call>')
    assert parsed.error and "JSON object" in parsed.error


def test_missing_name():
    parsed = parse_assistant_text('<tool_call>\n{"arguments": {}}\n</tool_call>')
    assert parsed.error


def test_reasoning_block():
    parsed = parse_assistant_text("<think>\nfirst ls\n</think>\n" + render_tool_call("bash", {"command": "ls"}))
    assert parsed.reasoning == "first ls" and parsed.tool_calls
