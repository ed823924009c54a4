def remaining(limit, spent):
    return limit - spent


def percent(part, whole):
    return part / whole * 100
