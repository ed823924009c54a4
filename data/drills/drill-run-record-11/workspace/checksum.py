values = [474, 125, 498, 362, 734]
weights = range(1, len(values) + 1)
print("checksum:", sum(v * w for v, w in zip(values, weights)))
