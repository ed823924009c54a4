print("1) Help")
print("2) Credits")
print("3) Load game")
print("4) Options")
