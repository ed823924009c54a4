print("1) Load game")
print("2) Profiles")
print("3) Help")
print("4) Options")
