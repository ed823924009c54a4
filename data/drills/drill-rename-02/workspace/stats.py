def proc(s):
    return s.replace(' ', '')
