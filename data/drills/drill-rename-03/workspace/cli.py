from pricing import calc

print(calc(3, 4))
