def shelf_label(name):
    """The label printed on a shelf: the product name in title case."""
    return name.title()


if __name__ == "__main__":
    print(shelf_label("oat milk"))
