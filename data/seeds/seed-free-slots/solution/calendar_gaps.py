"""Find free time in a day of meetings."""


def to_minutes(hhmm):
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def to_hhmm(minutes):
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def free_slots(busy, start, end, min_minutes):
    """Free (start, end) periods of at least min_minutes between start and end."""
    day_start, day_end = to_minutes(start), to_minutes(end)
    slots, cursor = [], day_start
    for b_start, b_end in sorted((to_minutes(a), to_minutes(b)) for a, b in busy):
        if b_end <= cursor or b_start >= day_end:
            continue  # already covered, or outside the day
        b_start = max(b_start, day_start)
        if b_start - cursor >= min_minutes and b_start > cursor:
            slots.append((to_hhmm(cursor), to_hhmm(b_start)))
        cursor = max(cursor, b_end)
    cursor = min(cursor, day_end)
    if day_end - cursor >= min_minutes and day_end > cursor:
        slots.append((to_hhmm(cursor), to_hhmm(day_end)))
    return slots
