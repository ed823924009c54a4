def first_char(s):
    return s[0]


def negate(x):
    return -x
