print("1) Load game")
print("2) High scores")
print("3) Statistics")
print("4) Help")
