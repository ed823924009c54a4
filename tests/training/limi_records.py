"""Trajectories written in the published LIMI schema: SII CLI tools in OpenAI function form, arguments as objects.

The tools' calls have different argument keys (``command``/``description``, ``absolute_path``/``limit``,
``file_path``/``content``, ...), the case where a table's struct column would merge them.
"""

SII_TOOLS = [
    {"type": "function", "function": {
        "name": "run_shell_command", "description": "Run a shell command.",
        "parameters": {"type": "object", "properties": {
            "command": {"type": "string", "description": "The command."},
            "description": {"type": "string", "description": "What it does."},
            "directory": {"type": "string", "description": "Where to run it."}}, "required": ["command"]}}},
    {"type": "function", "function": {
        "name": "read_file", "description": "Read a file.",
        "parameters": {"type": "object", "properties": {
            "absolute_path": {"type": "string", "description": "The file."},
            "offset": {"type": "number", "description": "First line."},
            "limit": {"type": "number", "description": "How many lines."}}, "required": ["absolute_path"]}}},
    {"type": "function", "function": {
        "name": "write_file", "description": "Write a file.",
        "parameters": {"type": "object", "properties": {
            "file_path": {"type": "string", "description": "The file."},
            "content": {"type": "string", "description": "Its text."}}, "required": ["file_path", "content"]}}},
    {"type": "function", "function": {
        "name": "replace", "description": "Replace text in a file.",
        "parameters": {"type": "object", "properties": {
            "file_path": {"type": "string", "description": "The file."},
            "old_string": {"type": "string", "description": "Text to find."},
            "new_string": {"type": "string", "description": "Its replacement."},
            "expected_replacements": {"type": "number", "description": "How many."}},
            "required": ["file_path", "old_string", "new_string"]}}},
    {"type": "function", "function": {
        "name": "glob", "description": "Find files.",
        "parameters": {"type": "object", "properties": {
            "pattern": {"type": "string", "description": "The glob."}}, "required": ["pattern"]}}},
    {"type": "function", "function": {
        "name": "search_file_content", "description": "Search files.",
        "parameters": {"type": "object", "properties": {
            "pattern": {"type": "string", "description": "A regular expression."},
            "include": {"type": "string", "description": "Files to search."}}, "required": ["pattern"]}}},
]


def _call(i: str, name: str, arguments: dict) -> dict:
    return {"id": i, "type": "function", "function": {"name": name, "arguments": arguments}}


def limi_record(i: int) -> dict:
    """One LIMI-schema trajectory: system, user, assistant tool calls of four SII CLI tools, tool results."""
    return {"messages": [
        {"role": "system", "content": "You are an interactive CLI agent specializing in software engineering tasks."},
        {"role": "user", "content": f"Build a small word counter for notes-{i}.txt and report the total."},
        {"role": "assistant", "content": "I will look at the workspace first.", "tool_calls": [
            _call("c1", "glob", {"pattern": f"**/notes-{i}.txt"}),
            _call("c2", "run_shell_command", {"command": f"wc -w notes-{i}.txt", "description": "Count words."})]},
        {"role": "tool", "tool_call_id": "c1", "content": f"/home/user/project/notes-{i}.txt"},
        {"role": "tool", "tool_call_id": "c2", "content": f"{10 + i} notes-{i}.txt"},
        {"role": "assistant", "content": "", "tool_calls": [
            _call("c3", "read_file", {"absolute_path": f"/home/user/project/notes-{i}.txt", "limit": 20}),
            _call("c4", "search_file_content", {"pattern": "TODO", "include": "*.txt"})]},
        {"role": "tool", "tool_call_id": "c3", "content": "alpha beta gamma\n" * (i + 1)},
        {"role": "tool", "tool_call_id": "c4", "content": "No matches found."},
        {"role": "assistant", "content": "Writing the counter.", "tool_calls": [
            _call("c5", "write_file", {"file_path": "/home/user/project/count.py",
                                       "content": "import sys\nprint(len(open(sys.argv[1]).read().split()))\n"}),
            _call("c6", "replace", {"file_path": "/home/user/project/count.py", "old_string": "print(", "new_string": "print('words:', ",
                                    "expected_replacements": 1})]},
        {"role": "tool", "tool_call_id": "c5", "content": "Successfully created and wrote to new file: /home/user/project/count.py."},
        {"role": "tool", "tool_call_id": "c6", "content": "Successfully modified file: /home/user/project/count.py (1 replacements)."},
        {"role": "user", "content": "Run it please."},
        {"role": "assistant", "content": f"The file has {10 + i} words; `python count.py notes-{i}.txt` prints it."}],
        "tools": SII_TOOLS}
