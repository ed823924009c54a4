values = [991, 943, 406, 828, 310]
weights = range(1, len(values) + 1)
print("jobs:", sum(v * w for v, w in zip(values, weights)))
