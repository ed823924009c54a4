ENTRIES = ["New game", "Load game", "Settings"]

for number, entry in enumerate(ENTRIES, 1):
    print(f"{number}) {entry}")
