print("1) Profiles")
print("2) Options")
print("3) Help")
