def calc(width, height):
    """Area of a width x height rectangle."""
    return width * height
