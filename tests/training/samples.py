"""A small multi-turn tool-use trajectory record, as the training tests feed it."""


def sample(i: int, words: int = 30) -> dict:
    filler = " ".join(f"w{i}_{k}" for k in range(words))
    return {"messages": [
        {"role": "system", "content": "You are an agent."},
        {"role": "user", "content": f"Task {i}: {filler}"},
        {"role": "assistant", "content": f"Looking {i}.", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "bash", "arguments": {"command": f"ls {i}"}}}]},
        {"role": "tool", "tool_call_id": "a", "content": f"file{i}.txt " + filler},
        {"role": "user", "content": "Please also count them."},
        {"role": "assistant", "content": f"There is one file, {i}.", "tool_calls": [
            {"id": "b", "type": "function", "function": {"name": "finish", "arguments": {"summary": f"done {i}"}}}]},
        {"role": "tool", "tool_call_id": "b", "content": "finished"}],
        "tools": [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}]}
