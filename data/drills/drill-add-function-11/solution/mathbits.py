def is_negative(x):
    return x < 0


def cube(x):
    return x ** 3
