def last_char(s):
    return s[-1]


def count_words(text):
    return len(text.split())
