def add_one(n):
    return n + 1


def count_words(text):
    return len(text.split())
