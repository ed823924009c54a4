def last_char(s):
    return s[-1]


def cube(x):
    return x ** 3
