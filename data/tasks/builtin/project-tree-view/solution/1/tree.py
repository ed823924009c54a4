"""Print a listing of file paths (with sizes) as a tree."""
import argparse


def read_tree(path):
    """Nested dicts: a folder maps names to folders (dicts) or file sizes (ints)."""
    root = {}
    with open(path) as fh:
        for line in fh:
            if not line.strip():
                continue
            name, size = line.rsplit(None, 1)
            node = root
            *folders, leaf = name.split("/")
            for folder in folders:
                node = node.setdefault(folder, {})
            node[leaf] = int(size)
    return root


def render(node, prefix=""):
    lines = []
    names = sorted(node)
    for i, name in enumerate(names):
        last = i == len(names) - 1
        lines.append(prefix + ("└── " if last else "├── ") + name)
        if isinstance(node[name], dict):
            lines.extend(render(node[name], prefix + ("    " if last else "│   ")))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("listing")
    args = parser.parse_args(argv)
    print("\n".join(["."] + render(read_tree(args.listing))))


if __name__ == "__main__":
    main()
