"""Bike-share trip statistics from trips.csv."""
import csv
from datetime import datetime


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


if __name__ == "__main__":
    write_station_counts(read_trips())
