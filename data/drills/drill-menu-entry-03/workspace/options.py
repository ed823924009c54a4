print("1) Load game")
print("2) Statistics")
print("3) Credits")
