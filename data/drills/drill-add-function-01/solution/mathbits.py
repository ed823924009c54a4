def is_odd(n):
    return n % 2 == 1


def negate(x):
    return -x
