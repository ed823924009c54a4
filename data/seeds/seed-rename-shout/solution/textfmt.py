def exclaim_upper(text):
    """text in capitals, with an exclamation mark."""
    return text.upper() + "!"
