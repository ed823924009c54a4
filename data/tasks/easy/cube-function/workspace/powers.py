def square(n):
    """n raised to the second power."""
    return n * n
