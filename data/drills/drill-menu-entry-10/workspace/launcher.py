print("1) High scores")
print("2) Options")
print("3) Credits")
print("4) Profiles")
