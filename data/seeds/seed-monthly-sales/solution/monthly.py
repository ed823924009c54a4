"""Total sales per calendar month, from sales.csv to monthly.csv."""
import csv
from collections import defaultdict
from decimal import Decimal

totals = defaultdict(Decimal)  # Decimal: cents must add up exactly
with open("sales.csv", newline="") as fh:
    for row in csv.DictReader(fh):
        totals[row["date"][:7]] += Decimal(row["amount"])
with open("monthly.csv", "w") as out:
    out.write("month,total\n")
    for month in sorted(totals):
        out.write(f"{month},{totals[month]:.2f}\n")
