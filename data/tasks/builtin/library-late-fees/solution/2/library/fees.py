"""Late fees for the branch library."""
from datetime import date

DAILY_FEE = 0.25  # per day late
MAX_FEE = 10.00  # no single loan costs more than this
GRACE_DAYS = 2  # returns up to this many days late are free


def days_late(due: date, returned: date) -> int:
    """Whole days between the due date and the return (0 when on time or early)."""
    return max((returned - due).days, 0)


def late_fee(due: date, returned: date) -> float:
    """The fee for one loan: nothing within the grace period, else DAILY_FEE per late day, at most MAX_FEE."""
    late = days_late(due, returned)
    if late <= GRACE_DAYS:
        return 0.0
    return min(late * DAILY_FEE, MAX_FEE)
