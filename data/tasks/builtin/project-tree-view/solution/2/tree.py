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


def total(node):
    return node if isinstance(node, int) else sum(total(child) for child in node.values())


def count_files(node):
    return 1 if isinstance(node, int) else sum(count_files(child) for child in node.values())


def human(size):
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def ordered(node):
    """Folders first, then files, each group by name ignoring case."""
    return sorted(node, key=lambda name: (not isinstance(node[name], dict), name.lower()))


def label(name, child):
    if isinstance(child, dict):
        return f"{name}/ ({human(total(child))})"
    return f"{name} ({human(child)})"


def render(node, prefix=""):
    lines = []
    names = ordered(node)
    for i, name in enumerate(names):
        last = i == len(names) - 1
        lines.append(prefix + ("└── " if last else "├── ") + label(name, node[name]))
        if isinstance(node[name], dict):
            lines.extend(render(node[name], prefix + ("    " if last else "│   ")))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("listing")
    args = parser.parse_args(argv)
    tree = read_tree(args.listing)
    print("\n".join([f". ({human(total(tree))})"] + render(tree)))


if __name__ == "__main__":
    main()
