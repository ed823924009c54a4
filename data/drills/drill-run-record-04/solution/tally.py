values = [271, 932, 37, 977, 542, 692, 592]
weights = range(1, len(values) + 1)
print("total:", sum(v * w for v, w in zip(values, weights)))
