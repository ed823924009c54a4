def clamp(value, low, high):
    """value limited to the range low..high."""
    return max(low, min(value, high))


def is_even(n):
    """True when the integer n is even."""
    return n % 2 == 0
