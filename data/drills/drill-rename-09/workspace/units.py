def conv(km):
    return km * 1000
