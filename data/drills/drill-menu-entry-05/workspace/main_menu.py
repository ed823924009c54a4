print("1) Help")
print("2) Statistics")
print("3) High scores")
print("4) New game")
