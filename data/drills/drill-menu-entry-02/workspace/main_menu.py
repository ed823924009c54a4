print("1) Help")
print("2) Credits")
print("3) Statistics")
print("4) New game")
