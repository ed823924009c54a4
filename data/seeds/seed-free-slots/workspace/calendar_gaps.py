"""Find free time in a day of meetings."""


def to_minutes(hhmm):
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def to_hhmm(minutes):
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def free_slots(busy, start, end, min_minutes):
    raise NotImplementedError
