def f(part, whole):
    return part * 100 / whole
