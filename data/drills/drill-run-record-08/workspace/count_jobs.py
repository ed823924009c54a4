values = [49, 810, 411, 465, 390]
weights = range(1, len(values) + 1)
print("total:", sum(v * w for v, w in zip(values, weights)))
