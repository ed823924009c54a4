values = [43, 622, 642, 145]
weights = range(1, len(values) + 1)
print("checksum:", sum(v * w for v, w in zip(values, weights)))
