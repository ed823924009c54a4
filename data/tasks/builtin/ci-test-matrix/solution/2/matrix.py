"""Expand matrix.json into the list of CI jobs."""
import itertools
import json

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


if __name__ == "__main__":
    found, axes = jobs()
    for job in found:
        print(name(job, axes))
