values = [848, 384, 82, 620, 924]
weights = range(1, len(values) + 1)
print("total:", sum(v * w for v, w in zip(values, weights)))
