"""Late-fee totals per member, from a loans export."""
import argparse
import csv
from datetime import date

from library.fees import late_fee


def member_totals(path, today):
    """{member: total fee}; loans not returned yet count as returned on ``today``."""
    totals = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            returned = row["returned"].strip()
            back = date.fromisoformat(returned) if returned else today
            fee = late_fee(date.fromisoformat(row["due"]), back)
            totals[row["member"]] = totals.get(row["member"], 0.0) + fee
    return totals


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("loans")
    parser.add_argument("--today", type=date.fromisoformat, default=date.today(), help="report date, YYYY-MM-DD")
    args = parser.parse_args(argv)
    totals = member_totals(args.loans, args.today)
    for member in sorted(totals):
        print(f"{member} {totals[member]:.2f}")


if __name__ == "__main__":
    main()
