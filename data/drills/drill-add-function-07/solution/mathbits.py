def last_char(s):
    return s[-1]


def first_char(s):
    return s[0]
