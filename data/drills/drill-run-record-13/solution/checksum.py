values = [556, 604, 325, 170]
weights = range(1, len(values) + 1)
print("total:", sum(v * w for v, w in zip(values, weights)))
