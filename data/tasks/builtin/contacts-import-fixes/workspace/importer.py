"""Import a contacts export (CSV with a header row) into a list of dicts."""


def load_contacts(path):
    contacts = []
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    header = lines[0].split(",")
    for line in lines[1:]:
        if not line:
            continue
        values = line.split(",")
        contacts.append(dict(zip(header, values)))
    return contacts
