"""Rolling statistics over a list of numbers."""


def window_sums(values, k):
    """Sums of every run of k consecutive values, in order."""
    if k <= 0:
        raise ValueError("k must be positive")
    sums = []
    for start in range(len(values) - k + 1):
        sums.append(sum(values[start:start + k]))
    return sums


def window_means(values, k):
    """Means of every run of k consecutive values, in order."""
    return [total / k for total in window_sums(values, k)]
