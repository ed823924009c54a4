"""A to-do list kept in todo.json: add, list, done."""
import json
import sys
from pathlib import Path

STORE = Path("todo.json")


def load():
    return json.loads(STORE.read_text()) if STORE.exists() else []


def main(argv):
    items = load()
    if len(argv) == 2 and argv[0] == "add":
        items.append({"text": argv[1], "done": False})
        STORE.write_text(json.dumps(items, indent=2))
        print(f"Added {len(items)}: {argv[1]}")
    elif argv == ["list"]:
        for n, item in enumerate(items, 1):
            print(f"{n}. [{'x' if item['done'] else ' '}] {item['text']}")
    elif len(argv) == 2 and argv[0] == "done":
        n = int(argv[1]) if argv[1].isdigit() else 0
        if not 1 <= n <= len(items):
            print(f"no item {argv[1]}", file=sys.stderr)
            return 1
        items[n - 1]["done"] = True
        STORE.write_text(json.dumps(items, indent=2))
        print(f"Done {n}: {items[n - 1]['text']}")
    else:
        print("usage: todo.py add TEXT | list | done N", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
