ENTRIES = ["New game", "Load game", "Settings", "Quit"]

for number, entry in enumerate(ENTRIES, 1):
    print(f"{number}) {entry}")
