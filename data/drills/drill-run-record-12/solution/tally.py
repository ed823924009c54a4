values = [353, 494, 993, 309, 313, 969]
weights = range(1, len(values) + 1)
print("checksum:", sum(v * w for v, w in zip(values, weights)))
