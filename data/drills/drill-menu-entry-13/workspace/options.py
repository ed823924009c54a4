print("1) Statistics")
print("2) Help")
print("3) New game")
print("4) Credits")
