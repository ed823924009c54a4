"""Expand matrix.json into the list of CI jobs."""
import itertools
import json


def jobs(path="matrix.json"):
    """One dict per job: every combination of the axes, first axis varying slowest."""
    with open(path) as fh:
        matrix = json.load(fh)
    axes = list(matrix)
    return [dict(zip(axes, values)) for values in itertools.product(*(matrix[a] for a in axes))], axes


if __name__ == "__main__":
    found, axes = jobs()
    for job in found:
        print("-".join(job[a] for a in axes))
