values = [529, 322, 978, 126, 159, 446, 923]
weights = range(1, len(values) + 1)
print("total:", sum(v * w for v, w in zip(values, weights)))
