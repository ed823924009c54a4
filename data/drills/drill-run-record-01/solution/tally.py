values = [319, 529, 593, 270, 350]
weights = range(1, len(values) + 1)
print("total:", sum(v * w for v, w in zip(values, weights)))
