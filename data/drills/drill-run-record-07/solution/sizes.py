values = [518, 951, 894, 995]
weights = range(1, len(values) + 1)
print("bytes:", sum(v * w for v, w in zip(values, weights)))
