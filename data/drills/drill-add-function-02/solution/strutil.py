def negate(x):
    return -x


def add_one(n):
    return n + 1
