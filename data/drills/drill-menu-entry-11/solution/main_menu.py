print("1) Profiles")
print("2) Credits")
print("3) High scores")
print("4) Back")
