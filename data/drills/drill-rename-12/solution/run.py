from pricing import percent

print(percent(1, 4))
