def double(x):
    return x * 2


def is_odd(n):
    return n % 2 == 1
