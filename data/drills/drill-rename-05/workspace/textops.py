def calc(qty, unit):
    return qty * unit
