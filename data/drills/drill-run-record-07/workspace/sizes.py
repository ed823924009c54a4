values = [708, 740, 646, 313]
weights = range(1, len(values) + 1)
print("jobs:", sum(v * w for v, w in zip(values, weights)))
