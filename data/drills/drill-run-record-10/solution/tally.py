values = [775, 17, 310, 387]
weights = range(1, len(values) + 1)
print("checksum:", sum(v * w for v, w in zip(values, weights)))
