values = [431, 46, 636, 487, 405, 479]
weights = range(1, len(values) + 1)
print("checksum:", sum(v * w for v, w in zip(values, weights)))
