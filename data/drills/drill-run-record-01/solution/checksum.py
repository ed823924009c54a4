values = [123, 912, 71, 634, 727, 488, 639]
weights = range(1, len(values) + 1)
print("bytes:", sum(v * w for v, w in zip(values, weights)))
