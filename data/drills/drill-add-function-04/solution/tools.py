def negate(x):
    return -x


def double(x):
    return x * 2
