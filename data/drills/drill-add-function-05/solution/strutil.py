def is_negative(x):
    return x < 0


def add_one(n):
    return n + 1
