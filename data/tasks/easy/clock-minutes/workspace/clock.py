def to_minutes(seconds):
    """Whole minutes in a number of seconds."""
    return seconds // 100
