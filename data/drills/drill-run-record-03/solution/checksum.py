values = [465, 390, 784, 205, 476, 375, 818]
weights = range(1, len(values) + 1)
print("total:", sum(v * w for v, w in zip(values, weights)))
