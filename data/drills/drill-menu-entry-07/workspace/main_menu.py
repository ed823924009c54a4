print("1) Load game")
print("2) Options")
print("3) New game")
