def double(x):
    return x * 2


def last_char(s):
    return s[-1]
