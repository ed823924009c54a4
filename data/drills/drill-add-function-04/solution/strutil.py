def last_char(s):
    return s[-1]


def shout(s):
    return s.upper()
