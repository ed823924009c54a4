import json
import re

BLOCK = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


def extract_tool_calls(text):
    """Every well-formed <tool_call> block in ``text`` as {"name", "arguments"}, in order."""
    calls = []
    for match in BLOCK.finditer(text):
        try:
            data = json.loads(match.group(1))
        except json.JSONDecodeError:
            continue
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            continue
        calls.append({"name": data["name"], "arguments": data.get("arguments") or {}})
    return calls
