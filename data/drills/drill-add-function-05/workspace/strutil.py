def is_negative(x):
    return x < 0
