"""Late-fee totals per member, from a loans export."""
import csv
import sys
from datetime import date

from library.fees import late_fee


def member_totals(path):
    totals = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            fee = late_fee(date.fromisoformat(row["due"]), date.fromisoformat(row["returned"]))
            totals[row["member"]] = totals.get(row["member"], 0) + fee
    return totals


if __name__ == "__main__":
    for member, total in member_totals(sys.argv[1]).items():
        print(member, total)
