import sys
from collections import Counter


def main(argv=None):
    """Print how many times each line occurs in the files given, most frequent first."""
    counts = Counter()
    for path in (argv if argv is not None else sys.argv[1:]):
        with open(path, encoding="utf-8") as fh:
            counts.update(line.rstrip("\n") for line in fh)
    for line, n in counts.most_common():
        print(f"{n}\t{line}")
    return 0
