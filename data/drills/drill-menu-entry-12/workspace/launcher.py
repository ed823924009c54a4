print("1) Load game")
print("2) Help")
print("3) Credits")
print("4) Statistics")
