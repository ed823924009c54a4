for n in range(10, -1, -1):
    print(n)
print("Liftoff!")
