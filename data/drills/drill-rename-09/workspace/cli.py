from stats import calc

print(calc(3, 4))
