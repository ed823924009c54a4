"""Scale a recipe file to a number of servings."""
import argparse

UNITS = {"g", "kg", "ml", "l", "tsp", "tbsp", "cup", "oz", "lb"}


def parse_recipe(path):
    """(title, serves, ingredients); an ingredient is (quantity or None, unit or None, name or whole line)."""
    with open(path) as fh:
        head, _, body = fh.read().partition("---\n")
    meta = dict(line.split(": ", 1) for line in head.splitlines() if ": " in line)
    items = []
    for line in body.splitlines():
        if not line.strip():
            continue
        words = line.split()
        try:
            quantity = float(words[0])
        except ValueError:
            items.append((None, None, line.strip()))
            continue
        if len(words) > 2 and words[1] in UNITS:
            items.append((quantity, words[1], " ".join(words[2:])))
        else:
            items.append((quantity, None, " ".join(words[1:])))
    return meta["title"], int(meta["serves"]), items


def fmt(number):
    text = f"{round(number, 2):.2f}".rstrip("0").rstrip(".")
    return text if text != "-0" else "0"


def line_of(quantity, unit, name):
    if quantity is None:
        return name
    return " ".join(part for part in (fmt(quantity), unit, name) if part)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("recipe")
    parser.add_argument("servings", type=int)
    args = parser.parse_args(argv)
    title, serves, items = parse_recipe(args.recipe)
    factor = args.servings / serves
    print(f"{title} (serves {args.servings})")
    for quantity, unit, name in items:
        print(line_of(None if quantity is None else quantity * factor, unit, name))


if __name__ == "__main__":
    main()
