def halve(x):
    return x / 2


def negate(x):
    return -x
