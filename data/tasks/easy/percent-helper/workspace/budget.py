def remaining(limit, spent):
    return limit - spent
