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


def label(name, child, cut=False):
    if isinstance(child, dict):
        return f"{name}/ ({human(total(child))})" + (f" [{count_files(child)} files]" if cut and child else "")
    return f"{name} ({human(child)})"


def render(node, prefix="", depth=1, max_depth=None):
    lines = []
    names = ordered(node)
    for i, name in enumerate(names):
        last = i == len(names) - 1
        child = node[name]
        cut = max_depth is not None and depth >= max_depth
        lines.append(prefix + ("└── " if last else "├── ") + label(name, child, cut))
        if isinstance(child, dict) and not cut:
            lines.extend(render(child, prefix + ("    " if last else "│   "), depth + 1, max_depth))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("listing")
    parser.add_argument("--max-depth", type=int, default=None)
    args = parser.parse_args(argv)
    tree = read_tree(args.listing)
    head = f". ({human(total(tree))})"
    if args.max_depth == 0:
        print(f"{head} [{count_files(tree)} files]")
        return
    print("\n".join([head] + render(tree, max_depth=args.max_depth)))


if __name__ == "__main__":
    main()
