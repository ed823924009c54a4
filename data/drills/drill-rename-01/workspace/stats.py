def avg(xs):
    return sum(xs) / len(xs)
