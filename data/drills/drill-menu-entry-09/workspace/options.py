print("1) Options")
print("2) High scores")
print("3) Profiles")
print("4) Load game")
