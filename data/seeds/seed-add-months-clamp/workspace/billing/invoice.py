from billing.dates import add_months


def due_dates(start, count, every_months=1):
    """The next ``count`` due dates after ``start``, every ``every_months`` months."""
    return [add_months(start, every_months * i) for i in range(1, count + 1)]
