print("1) Profiles")
print("2) Credits")
print("3) Load game")
print("4) Log out")
