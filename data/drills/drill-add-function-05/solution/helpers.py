def negate(x):
    return -x


def is_odd(n):
    return n % 2 == 1
