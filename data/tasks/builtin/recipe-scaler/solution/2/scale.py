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

TO_METRIC = {"tsp": (5, "ml"), "tbsp": (15, "ml"), "cup": (240, "ml"), "oz": (28.35, "g"), "lb": (453.6, "g"),
             "kg": (1000, "g"), "l": (1000, "ml")}


def to_metric(quantity, unit):
    """(quantity, unit) in g or ml; other units unchanged."""
    if quantity is None or unit not in TO_METRIC:
        return quantity, unit
    factor, base = TO_METRIC[unit]
    return quantity * factor, base


def display(quantity, unit):
    """1000 g and more as kg, 1000 ml and more as l."""
    if quantity is not None and unit in ("g", "ml") and quantity >= 1000:
        return quantity / 1000, {"g": "kg", "ml": "l"}[unit]
    return quantity, unit


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("recipe")
    parser.add_argument("servings", type=int)
    parser.add_argument("--metric", action="store_true", help="convert to g and ml (kg and l from 1000 up)")
    args = parser.parse_args(argv)
    title, serves, items = parse_recipe(args.recipe)
    factor = args.servings / serves
    print(f"{title} (serves {args.servings})")
    for quantity, unit, name in items:
        quantity = None if quantity is None else quantity * factor
        if args.metric:
            quantity, unit = display(*to_metric(quantity, unit))
        print(line_of(quantity, unit, name))


if __name__ == "__main__":
    main()
