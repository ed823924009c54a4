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


def main(path):
    messages = [{"role": role, "content": content} for _, role, content in read_messages(path)]
    with open("conversations.jsonl", "w", encoding="utf-8") as out:
        out.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
