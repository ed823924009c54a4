OPTIONS = [("a", "Add task"), ("l", "List tasks"), ("q", "Quit")]

for key, label in OPTIONS:
    print(f"[{key}] {label}")
