print("1) Help")
print("2) Statistics")
print("3) Credits")
print("4) Profiles")
