values = [403, 839, 402, 73, 177, 666, 967]
weights = range(1, len(values) + 1)
print("jobs:", sum(v * w for v, w in zip(values, weights)))
