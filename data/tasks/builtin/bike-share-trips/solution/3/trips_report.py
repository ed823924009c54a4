"""Bike-share trip statistics from trips.csv."""
import csv
import json
from datetime import datetime
from statistics import median


def read_trips(path="trips.csv"):
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        start = datetime.strptime(row["start_time"], "%Y-%m-%d %H:%M:%S")
        end = datetime.strptime(row["end_time"], "%Y-%m-%d %H:%M:%S")
        row["start"], row["seconds"] = start, (end - start).total_seconds()
    return rows


def station_counts(trips):
    counts = {}
    for trip in trips:
        counts.setdefault(trip["start_station"], [0, 0])[0] += 1
        counts.setdefault(trip["end_station"], [0, 0])[1] += 1
    return sorted(counts.items(), key=lambda item: (-item[1][0], item[0]))


def write_station_counts(trips):
    with open("station_counts.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["station", "departures", "arrivals"])
        for station, (departures, arrivals) in station_counts(trips):
            writer.writerow([station, departures, arrivals])


MIN_SECONDS = 60  # shorter trips (and negative ones) are docking errors or clock glitches


def cleaned(trips):
    return [t for t in trips if t["seconds"] >= MIN_SECONDS]


def write_hourly(trips):
    by_hour = {}
    for trip in trips:
        by_hour.setdefault(trip["start"].hour, []).append(trip["seconds"] / 60)
    with open("hourly.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["hour", "trips", "median_minutes"])
        for hour in sorted(by_hour):
            writer.writerow([hour, len(by_hour[hour]), f"{median(by_hour[hour]):.1f}"])


def round_trip_shares(trips):
    shares = {}
    for kind in ("member", "casual"):
        mine = [t for t in trips if t["member_type"] == kind]
        shares[kind] = round(sum(t["start_station"] == t["end_station"] for t in mine) / len(mine), 3)
    shares["more_round_trips"] = max(("member", "casual"), key=lambda kind: shares[kind])
    return shares


if __name__ == "__main__":
    trips = read_trips()
    write_station_counts(trips)
    kept = cleaned(trips)
    write_hourly(kept)
    with open("cleaning.json", "w") as fh:
        json.dump({"kept": len(kept), "dropped": len(trips) - len(kept)}, fh, indent=2)
    with open("round_trips.json", "w") as fh:
        json.dump(round_trip_shares(kept), fh, indent=2)
