"""Turn a support-chat export into chat-format JSON lines for fine-tuning."""
import json
import re
import sys
from datetime import datetime

LINE = re.compile(r"^\[(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\] (\w+): ?(.*)$")


def read_messages(path):
    """[(time, role, content)] without the export tool's system notices; continuation lines joined."""
    messages = []
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            line = raw.rstrip("\n")
            match = LINE.match(line)
            if match:
                when = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
                messages.append([when, match.group(2), match.group(3).rstrip()])
            elif messages:
                messages[-1][2] += "\n" + line.rstrip()
    return [tuple(m) for m in messages if m[1] != "system"]

GAP_SECONDS = 30 * 60


def conversations(path):
    """Conversations split at gaps over 30 minutes, same-role runs merged, cut to end on the assistant."""
    found, current, last = [], [], None
    for when, role, content in read_messages(path):
        if last is not None and (when - last).total_seconds() > GAP_SECONDS:
            found.append(current)
            current = []
        last = when
        if current and current[-1]["role"] == role:
            current[-1]["content"] += "\n" + content
        else:
            current.append({"role": role, "content": content})
    found.append(current)
    kept = []
    for messages in found:
        while messages and messages[-1]["role"] != "assistant":
            messages.pop()
        if any(m["role"] == "user" for m in messages):
            kept.append(messages)
    return kept


def write_jsonl(path, items):
    with open(path, "w", encoding="utf-8") as out:
        for messages in items:
            out.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")


def main(path):
    write_jsonl("conversations.jsonl", conversations(path))


if __name__ == "__main__":
    main(sys.argv[1])
