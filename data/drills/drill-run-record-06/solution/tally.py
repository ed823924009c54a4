values = [402, 812, 805, 806, 512]
weights = range(1, len(values) + 1)
print("jobs:", sum(v * w for v, w in zip(values, weights)))
