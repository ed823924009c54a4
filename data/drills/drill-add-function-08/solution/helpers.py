def double(x):
    return x * 2


def is_negative(x):
    return x < 0
