from datetime import date


def add_months(day, months):
    """The same day of the month, ``months`` later (negative goes back)."""
    month_index = day.month - 1 + months
    year = day.year + month_index // 12
    month = month_index % 12 + 1
    return day.replace(year=year, month=month)
