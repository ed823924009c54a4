values = [435, 802, 169, 761]
weights = range(1, len(values) + 1)
print("total:", sum(v * w for v, w in zip(values, weights)))
