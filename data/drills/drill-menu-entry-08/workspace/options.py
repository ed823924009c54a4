print("1) Profiles")
print("2) Credits")
print("3) Load game")
