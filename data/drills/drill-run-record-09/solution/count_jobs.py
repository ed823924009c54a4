values = [933, 966, 50, 507]
weights = range(1, len(values) + 1)
print("total:", sum(v * w for v, w in zip(values, weights)))
