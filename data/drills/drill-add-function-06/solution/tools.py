def add_one(n):
    return n + 1


def first_char(s):
    return s[0]
