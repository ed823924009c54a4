print("1) Profiles")
print("2) Credits")
print("3) New game")
print("4) Options")
