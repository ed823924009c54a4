def last_char(s):
    return s[-1]
