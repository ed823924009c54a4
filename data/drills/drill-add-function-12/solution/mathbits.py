def square(x):
    return x * x


def shout(s):
    return s.upper()
