print("1) Options")
print("2) Load game")
print("3) Profiles")
print("4) Statistics")
