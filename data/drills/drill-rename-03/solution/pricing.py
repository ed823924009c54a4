def total_price(qty, unit):
    return qty * unit
