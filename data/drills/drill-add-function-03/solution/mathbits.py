def cube(x):
    return x ** 3


def first_char(s):
    return s[0]
