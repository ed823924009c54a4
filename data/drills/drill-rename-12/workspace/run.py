from pricing import f

print(f(1, 4))
