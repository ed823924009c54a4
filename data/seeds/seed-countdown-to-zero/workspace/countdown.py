for n in range(10, 0, -1):
    print(n)
print("Liftoff!")
