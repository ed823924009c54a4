values = [446, 923, 589, 442, 955]
weights = range(1, len(values) + 1)
print("total:", sum(v * w for v, w in zip(values, weights)))
