OPTIONS = [("a", "Add task"), ("l", "List tasks")]

for key, label in OPTIONS:
    print(f"[{key}] {label}")
