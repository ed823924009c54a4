def fmt(s):
    return s.title()
