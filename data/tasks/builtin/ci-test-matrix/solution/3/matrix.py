"""Expand matrix.json into the list of CI jobs."""
import argparse
import itertools
import json
import sys

SPECIAL = ("exclude", "include")


def jobs(path="matrix.json"):
    """(jobs, axes): the product of the axes minus `exclude` matches, then the `include` entries."""
    with open(path) as fh:
        matrix = json.load(fh)
    axes = [key for key in matrix if key not in SPECIAL]
    found = [dict(zip(axes, values)) for values in itertools.product(*(matrix[a] for a in axes))]
    for rule in matrix.get("exclude", []):
        found = [job for job in found if any(job.get(k) != v for k, v in rule.items())]
    found.extend(dict(extra) for extra in matrix.get("include", []))
    return found, axes


def name(job, axes):
    return "-".join(str(job[a]) for a in axes if a in job)


def shard(found, spec):
    """The jobs of shard "I/N" (1-based): every N-th job starting at position I-1."""
    try:
        index, count = (int(part) for part in spec.split("/"))
    except ValueError:
        raise SystemExit(f"--shard must look like I/N, got {spec!r}") from None
    if not 1 <= index <= count:
        print(f"error: --shard {spec}: I must lie between 1 and N", file=sys.stderr)
        raise SystemExit(2)
    return [job for position, job in enumerate(found) if position % count == index - 1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shard", metavar="I/N")
    parser.add_argument("--github", action="store_true", help="print a GitHub Actions matrix as JSON")
    args = parser.parse_args(argv)
    found, axes = jobs()
    if args.shard:
        found = shard(found, args.shard)
    if args.github:
        print(json.dumps({"include": [{**job, "name": name(job, axes)} for job in found]}))
        return
    for job in found:
        print(name(job, axes))


if __name__ == "__main__":
    main()
