def last_char(s):
    return s[-1]


def double(x):
    return x * 2
