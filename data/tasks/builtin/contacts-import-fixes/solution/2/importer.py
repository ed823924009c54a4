"""Import contacts exports (CSV with a header row, comma or semicolon separated) into lists of dicts."""
import csv


def load_contacts(path):
    """One dict per row, keyed by the header. Handles a UTF-8 byte-order mark, quoted fields and ';' exports."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        text = fh.read()
    header = text.splitlines()[0] if text else ""
    delimiter = ";" if header.count(";") > header.count(",") else ","
    rows = csv.DictReader(text.splitlines(), delimiter=delimiter)
    return [row for row in rows if any(row.values())]


def merge_contacts(*paths):
    """One contact per email (trimmed, lower-cased), the most recently updated winning; sorted by email."""
    best = {}
    for path in paths:
        for contact in load_contacts(path):
            email = contact["email"].strip().lower()
            contact = {**contact, "email": email}
            if email not in best or contact["updated"] > best[email]["updated"]:
                best[email] = contact
    return [best[email] for email in sorted(best)]
