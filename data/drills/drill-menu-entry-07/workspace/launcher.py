print("1) Load game")
print("2) New game")
print("3) Profiles")
