def percent(part, whole):
    return part * 100 / whole
