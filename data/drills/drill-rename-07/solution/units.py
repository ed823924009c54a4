def km_to_m(km):
    return km * 1000
