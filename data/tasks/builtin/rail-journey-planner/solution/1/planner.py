"""Journey planning over timetable.csv (one row per leg between consecutive stops)."""
import csv


def _minutes(clock):
    h, m = clock.split(":")
    return 60 * int(h) + int(m)


def load_legs(path="timetable.csv"):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def earliest_arrival(origin, destination, depart_after):
    """Earliest arrival ("HH:MM") at destination on a single train leaving origin at or after depart_after."""
    legs = load_legs()
    by_train = {}
    for leg in legs:
        by_train.setdefault(leg["train"], []).append(leg)
    best = None
    for train_legs in by_train.values():
        train_legs.sort(key=lambda leg: _minutes(leg["depart"]))
        boarded = False
        for leg in train_legs:
            if not boarded and leg["from"] == origin and _minutes(leg["depart"]) >= _minutes(depart_after):
                boarded = True
            if boarded and leg["to"] == destination:
                if best is None or _minutes(leg["arrive"]) < _minutes(best):
                    best = leg["arrive"]
                break
    return best
