def is_odd(n):
    return n % 2 == 1


def halve(x):
    return x / 2
