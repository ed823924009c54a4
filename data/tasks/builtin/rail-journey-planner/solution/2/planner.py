"""Journey planning over timetable.csv (one row per leg between consecutive stops)."""
import csv

MIN_CHANGE = 5  # minutes between arriving on one train and leaving on another


def _minutes(clock):
    h, m = clock.split(":")
    return 60 * int(h) + int(m)


def load_legs(path="timetable.csv"):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _journeys(origin, destination, depart_after):
    """Every journey (list of legs) from origin to destination; times only move forward, so it ends."""
    legs = load_legs()
    found = []

    def extend(station, ready, train, path):
        if station == destination and path:
            found.append(list(path))
            return
        for leg in legs:
            if leg["from"] != station:
                continue
            same_train = train is not None and leg["train"] == train
            earliest = ready if (same_train or train is None) else ready + MIN_CHANGE
            if _minutes(leg["depart"]) < earliest:
                continue
            if same_train and path and leg["depart"] < path[-1]["arrive"]:
                continue
            path.append(leg)
            extend(leg["to"], _minutes(leg["arrive"]), leg["train"], path)
            path.pop()

    extend(origin, _minutes(depart_after), None, [])
    return found


def earliest_arrival(origin, destination, depart_after):
    """Earliest arrival ("HH:MM") at destination, changing trains as needed, or None."""
    arrivals = [j[-1]["arrive"] for j in _journeys(origin, destination, depart_after)]
    return min(arrivals, key=_minutes) if arrivals else None
