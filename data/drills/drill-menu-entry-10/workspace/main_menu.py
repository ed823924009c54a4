print("1) New game")
print("2) Profiles")
print("3) Help")
print("4) Credits")
