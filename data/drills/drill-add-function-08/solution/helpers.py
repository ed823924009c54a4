def negate(x):
    return -x


def count_words(text):
    return len(text.split())
