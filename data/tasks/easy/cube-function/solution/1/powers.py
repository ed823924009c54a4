def square(n):
    """n raised to the second power."""
    return n * n


def cube(n):
    """n raised to the third power."""
    return n * n * n
