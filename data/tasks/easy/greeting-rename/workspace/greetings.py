def fmt(name):
    return f"Hello, {name}!"
