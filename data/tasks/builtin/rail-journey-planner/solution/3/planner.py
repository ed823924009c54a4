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


def _rides(legs):
    """Consecutive legs on one train merged into one entry per train ridden."""
    rides = []
    for leg in legs:
        if rides and rides[-1]["train"] == leg["train"]:
            rides[-1]["to"], rides[-1]["arrive"] = leg["to"], leg["arrive"]
        else:
            rides.append({"train": leg["train"], "from": leg["from"], "to": leg["to"],
                          "depart": leg["depart"], "arrive": leg["arrive"]})
    return rides


def journey(origin, destination, depart_after):
    """The best journey as one dict per train: earliest arrival, then fewest trains, then latest departure."""
    options = [_rides(j) for j in _journeys(origin, destination, depart_after)]
    if not options:
        return None
    return min(options, key=lambda r: (_minutes(r[-1]["arrive"]), len(r), -_minutes(r[0]["depart"])))


if __name__ == "__main__":
    import sys
    rides = journey(sys.argv[1], sys.argv[2], sys.argv[3])
    if rides is None:
        print("no connection")
        sys.exit(1)
    for ride in rides:
        print(f"{ride['depart']} {ride['from']} -> {ride['to']} {ride['arrive']} ({ride['train']})")
