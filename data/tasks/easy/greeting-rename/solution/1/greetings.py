def format_greeting(name):
    return f"Hello, {name}!"
