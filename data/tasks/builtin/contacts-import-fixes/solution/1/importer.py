"""Import a contacts export (CSV with a header row) into a list of dicts."""
import csv


def load_contacts(path):
    """One dict per row, keyed by the header; quoted fields may contain commas."""
    with open(path, encoding="utf-8", newline="") as fh:
        return [row for row in csv.DictReader(fh) if any(row.values())]
