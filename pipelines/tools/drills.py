"""Drill tasks: small, verifiable requests of the easy tier's kind (one to three tool calls), made from
templates so that curate can select 4 to 128 of them, each with a reference solution the ``replay``
teacher plays through the agent's tools.

    python -m pipelines.tools.drills --out data/drills [--per-family 12] [--seed 0]

Each task is a folder in the seed tasks' layout (``task.json``, ``workspace/``, ``solution/``; see
:mod:`pipelines.core.seeds`) with ``source: drill`` and ``provenance.family``. Rerunning with the same
arguments writes the same files. The families, one per kind of easy-tier request:

============== ==================================================================== ==========================
family         the request                                                          the replay's calls
============== ==================================================================== ==========================
new_file       create a file holding one given line                                 ls, write_file, finish
append_line    add a given line at the end of a list file                           ls, read, str_replace
set_value      change one constant in a Python settings module                      ls, read, str_replace
json_value     change one key of a JSON config, the rest unchanged                  ls, read, str_replace
print_typo     a program prints a misspelled word: fix it                           ls, read, str_replace, run
run_record     run a named program and save the number it prints                    ls, run, write_file
rename         rename a function and its caller                                     ls, read x2, edit x2, run
menu_entry     add an option line to a menu a program prints                        ls, read, str_replace, run
shell_fact     count rows, files or matching lines, or find the largest file        ls, bash, write_file
html_title     set an HTML page's title                                             ls, read, str_replace
add_function   add a one-line helper function to a module                           ls, read, str_replace
============== ==================================================================== ==========================

The requests are worded apart from the easy eval tier (``data/tasks/easy``), and curate's n-gram
decontamination checks every one of them against it before training. The replay never writes a value it
did not see: ``run_record`` runs the program first, ``shell_fact`` runs the command its task records as
``provenance.reference_runs`` (a person's way to the answer, never a check), and every edit reads its file
first.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pipelines.core.console import main_guard
from pipelines.core.errors import UserError

WORDS = ["amber", "birch", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper", "kestrel",
         "lagoon", "maple", "nectar", "onyx", "pebble", "quartz", "raven", "sierra", "tundra", "umber", "violet",
         "willow", "yarrow", "zephyr", "copper", "falcon", "meadow", "orchid", "saffron"]
NOUNS = ["backup", "deploy", "report", "invoice", "ticket", "sensor", "upload", "render", "import", "export",
         "cache", "queue", "batch", "sync", "audit", "release", "build", "index", "archive", "digest"]
SENTENCES = ["Nightly {n} runs at {h}:00 UTC", "The {w} team owns the {n} service", "Freeze on {n} changes until Monday",
             "Ask in #{w}-{n} before restarting", "{W} mirror is read-only this week", "Build {d} passed all checks",
             "Contact {w}@example.org for {n} access", "Rotate the {n} keys every {d} days",
             "Staging {n} resets at {h}:30", "Welcome aboard, {W} crew"]
FIXES = [("recieved", "received"), ("adress", "address"), ("seperate", "separate"), ("untill", "until"),
         ("succesful", "successful"), ("occured", "occurred"), ("comitted", "committed"), ("wierd", "weird"),
         ("tommorow", "tomorrow"), ("enviroment", "environment"), ("begining", "beginning"), ("calender", "calendar"),
         ("acheive", "achieve"), ("definately", "definitely")]
HELPERS = [("double", "x", "twice x", "return x * 2", "double(4) == 8 and double(-3) == -6"),
           ("square", "x", "x multiplied by itself", "return x * x", "square(5) == 25 and square(-2) == 4"),
           ("is_negative", "x", "True when x is below zero and False otherwise", "return x < 0",
            "is_negative(-1) is True and is_negative(0) is False"),
           ("halve", "x", "x divided by two", "return x / 2", "halve(9) == 4.5 and halve(0) == 0"),
           ("first_char", "s", "the first character of the string s", "return s[0]", "first_char('kiwi') == 'k'"),
           ("last_char", "s", "the last character of the string s", "return s[-1]", "last_char('kiwi') == 'i'"),
           ("shout", "s", "the string s in upper case", "return s.upper()", "shout('ok') == 'OK'"),
           ("add_one", "n", "n plus one", "return n + 1", "add_one(41) == 42"),
           ("is_odd", "n", "whether the whole number n is odd, as a bool", "return n % 2 == 1",
            "is_odd(3) is True and is_odd(10) is False"),
           ("cube", "x", "x raised to the third power", "return x ** 3", "cube(3) == 27"),
           ("negate", "x", "x with its sign flipped", "return -x", "negate(5) == -5 and negate(-2) == 2"),
           ("count_words", "text", "how many space-separated words text has", "return len(text.split())",
            "count_words('a bc d') == 3")]
MENU_ITEMS = ["New game", "Load game", "Options", "Credits", "High scores", "Help", "Profiles", "Statistics"]


@dataclass
class Drill:
    """One task: its request, workspace and solution files, checks and their public requirement sentences."""

    family: str
    category: str
    query: str
    workspace: dict[str, str]
    solution: dict[str, str]
    commands: list[str]
    requirements: list[str]
    extra: dict[str, str] = field(default_factory=dict)


def _sentence(rng: random.Random) -> str:
    word = rng.choice(WORDS)
    return rng.choice(SENTENCES).format(n=rng.choice(NOUNS), w=word, W=word.capitalize(), h=rng.randint(1, 9),
                                        d=rng.randint(2, 90))


def _shq(text: str) -> str:
    """``text`` single-quoted for the shell."""
    return "'" + text.replace("'", "'\\''") + "'"


def new_file(rng: random.Random) -> Drill:
    name = f"{rng.choice(WORDS)}_{rng.choice(['notice', 'banner', 'note', 'status', 'owner'])}.txt"
    line = _sentence(rng)
    query = rng.choice([f"Make a new file called {name} whose only line is `{line}`.",
                        f"Please add {name} to the workspace, with the single line `{line}` in it.",
                        f"Write `{line}` as the one and only line of a new file named {name}."])
    return Drill("new_file", "application_development", query, {".keep": ""}, {name: line + "\n"},
                 [f"test \"$(cat {name})\" = {_shq(line)} && test \"$(grep -c '' {name})\" -eq 1"],
                 [f"{name} exists and holds exactly the line `{line}`."])


def append_line(rng: random.Random) -> Drill:
    kind = rng.choice(["pins", "hosts", "users"])
    if kind == "pins":
        name = rng.choice(["constraints.txt", "requirements-dev.txt", "deps.txt"])
        pool = ["attrs==23.2.0", "click==8.1.7", "rich==13.7.1", "httpx==0.27.0", "tomli==2.0.1", "jinja2==3.1.4",
                "pytest==8.2.2", "black==24.4.2", "idna==3.7", "certifi==2024.7.4"]
    elif kind == "hosts":
        name = rng.choice(["mirrors.txt", "upstreams.txt"])
        pool = [f"{w}.mirror.example.net" for w in WORDS[:12]]
    else:
        name = rng.choice(["allowed_users.txt", "reviewers.txt"])
        pool = [f"{w}_{n}" for w, n in zip(WORDS[12:], NOUNS)]
    lines = rng.sample(pool, rng.randint(3, 5))
    new, old = lines[-1], lines[:-1]
    query = rng.choice([f"Add `{new}` as a new last line of {name}; the lines already in it stay as they are.",
                        f"{name} needs one more entry: put `{new}` at the end, after the existing lines, which must "
                        f"not change."])
    return Drill("append_line", "application_development", query, {name: "\n".join(old) + "\n"},
                 {name: "\n".join(old + [new]) + "\n"},
                 [f"python3 -c \"assert open('{name}').read().split() == {old + [new]!r}\""],
                 [f"{name} ends with `{new}` and keeps its earlier lines unchanged and in order."])


def set_value(rng: random.Random) -> Drill:
    name = rng.choice(["settings.py", "tuning.py", "defaults.py", "limits.py"])
    keys = rng.sample(["BATCH_SIZE", "MAX_RETRIES", "TIMEOUT_S", "WORKERS", "PAGE_SIZE", "CACHE_MB", "TOP_K",
                       "WARMUP_STEPS"], 3)
    values = {k: rng.choice([2, 4, 8, 16, 30, 64, 100, 128]) for k in keys}
    key = rng.choice(keys)
    new = values[key] * rng.choice([2, 3]) + rng.choice([0, 1])
    before = "".join(f"{k} = {v}\n" for k, v in values.items())
    after = "".join(f"{k} = {new if k == key else v}\n" for k, v in values.items())
    others = [k for k in keys if k != key]
    query = rng.choice([f"In {name}, change `{key}` from {values[key]} to {new}; leave the other settings alone.",
                        f"Raise `{key}` in {name} to {new} (it is {values[key]} now). Nothing else in the file "
                        f"should change."])
    check = " and ".join(f"m.{k} == {values[k]}" for k in others)
    module = name[:-3]
    return Drill("set_value", "llm_development", query, {name: before}, {name: after},
                 [f"python3 -c \"import {module} as m; assert m.{key} == {new} and {check}\""],
                 [f"`{key}` in {name} is {new} and the other settings keep their values."])


def json_value(rng: random.Random) -> Drill:
    name = rng.choice(["service.json", "app_config.json", "worker.json"])
    data = {"name": f"{rng.choice(WORDS)}-{rng.choice(NOUNS)}", "retries": rng.randint(1, 5),
            "timeout": rng.choice([10, 20, 30, 60]), "verbose": rng.choice([True, False])}
    key = rng.choice(["retries", "timeout"])
    new = data[key] + rng.choice([5, 10, 15])
    after = {**data, key: new}
    query = rng.choice([f"Set `{key}` to {new} in {name} and keep every other field as it is; the file has to "
                        f"remain valid JSON.",
                        f"We need `{key}` at {new} in {name}. Change only that value, and keep the JSON valid."])
    return Drill("json_value", "application_development", query, {name: json.dumps(data, indent=2) + "\n"},
                 {name: json.dumps(after, indent=2) + "\n"},
                 [f"python3 -c \"import json; assert json.load(open('{name}')) == {after!r}\""],
                 [f"{name} is valid JSON with `{key}` set to {new} and its other fields unchanged."])


def print_typo(rng: random.Random) -> Drill:
    name = rng.choice(["notify.py", "summary.py", "done.py", "banner.py"])
    bad, good = rng.choice(FIXES)
    noun = rng.choice(NOUNS)
    template = rng.choice(["{noun} {word}", "{word} {noun} request", "the {noun} was {word}"])
    wrong, right = template.format(noun=noun, word=bad), template.format(noun=noun, word=good)
    wrong, right = wrong[0].upper() + wrong[1:], right[0].upper() + right[1:]
    query = rng.choice([f"Running `python3 {name}` shows `{wrong}`. Correct the spelling in {name} so that it "
                        f"shows `{right}` instead.",
                        f"There is a spelling mistake in what `python3 {name}` prints (`{wrong}`); it should print "
                        f"`{right}`."])
    code = 'import sys\n\nprint("{}")\nsys.exit(0)\n'
    return Drill("print_typo", "codebase_debugging", query, {name: code.format(wrong)}, {name: code.format(right)},
                 [f"test \"$(python3 {name})\" = {_shq(right)}"], [f"`python3 {name}` prints `{right}`."])


def run_record(rng: random.Random) -> Drill:
    name = rng.choice(["tally.py", "checksum.py", "count_jobs.py", "sizes.py"])
    label = rng.choice(["total", "checksum", "jobs", "bytes"])
    numbers = [rng.randint(10, 999) for _ in range(rng.randint(4, 7))]
    out = rng.choice(["result.txt", "answer.txt", f"{label}.txt"])
    program = (f"values = {numbers!r}\nweights = range(1, len(values) + 1)\n"
               f"print(\"{label}:\", sum(v * w for v, w in zip(values, weights)))\n")
    value = sum(v * w for v, w in zip(numbers, range(1, len(numbers) + 1)))
    query = rng.choice([f"Run `python3 {name}`, then put the number it prints after `{label}:` into {out} as a "
                        f"line of its own.",
                        f"Save the value that `python3 {name}` reports as `{label}` in a new file {out} (just the "
                        f"number)."])
    return Drill("run_record", "data_analysis", query, {name: program}, {name: program, out: f"{value}\n"},
                 [f"test \"$(tr -d '[:space:]' < {out})\" = {value}"],
                 [f"{out} holds the number `python3 {name}` prints after `{label}:`."])


def rename(rng: random.Random) -> Drill:
    module = rng.choice(["pricing", "units", "textops", "stats"])
    script = rng.choice(["main", "cli", "run"])
    old, new, body, args, call, result = rng.choice([
        ("calc", "total_price", "return qty * unit", "qty, unit", "3, 4", "12"),
        ("conv", "km_to_m", "return km * 1000", "km", "2", "2000"),
        ("fmt", "title_words", "return s.title()", "s", "'red fox'", "Red Fox"),
        ("avg", "mean_of", "return sum(xs) / len(xs)", "xs", "[2, 4]", "3.0"),
        ("f", "percent", "return part * 100 / whole", "part, whole", "1, 4", "25.0"),
        ("proc", "strip_spaces", "return s.replace(' ', '')", "s", "'a b c'", "abc")])
    before = {f"{module}.py": f"def {old}({args}):\n    {body}\n",
              f"{script}.py": f"from {module} import {old}\n\nprint({old}({call}))\n"}
    after = {f"{module}.py": f"def {new}({args}):\n    {body}\n",
             f"{script}.py": f"from {module} import {new}\n\nprint({new}({call}))\n"}
    query = rng.choice([f"Give `{old}` in {module}.py the clearer name `{new}`, and update {script}.py to use the "
                        f"new name so that `python3 {script}.py` keeps printing the same result.",
                        f"Please rename `{old}` to `{new}` in {module}.py. {script}.py calls it, so change that "
                        f"call too; `python3 {script}.py` must still run."])
    return Drill("rename", "codebase_debugging", query, before, after,
                 [f"python3 -c \"import {module}; assert hasattr({module}, '{new}') and not hasattr({module}, "
                  f"'{old}')\"", f"grep -q {new} {script}.py && test \"$(python3 {script}.py)\" = {_shq(result)}"],
                 [f"{module}.py defines `{new}` in place of `{old}`, doing the same.",
                  f"{script}.py uses `{new}` and `python3 {script}.py` prints what it printed before."])


def menu_entry(rng: random.Random) -> Drill:
    name = rng.choice(["main_menu.py", "options.py", "launcher.py"])
    items = rng.sample(MENU_ITEMS, rng.randint(3, 4))
    extra = rng.choice(["Exit", "Log out", "About", "Back"])
    n = len(items)
    lines = "".join(f'print("{i + 1}) {item}")\n' for i, item in enumerate(items))
    query = rng.choice([f"{name} prints a numbered menu. Append a new option `{n + 1}) {extra}` on the line right "
                        f"after `{n}) {items[-1]}`.",
                        f"Extend the menu that `python3 {name}` shows with `{n + 1}) {extra}` as its last option, "
                        f"directly below `{n}) {items[-1]}`."])
    return Drill("menu_entry", "application_development", query, {name: lines},
                 {name: lines + f'print("{n + 1}) {extra}")\n'},
                 [f"test \"$(python3 {name} | tail -n 1)\" = {_shq(f'{n + 1}) {extra}')} && "
                  f"test \"$(python3 {name} | wc -l)\" -eq {n + 1}"],
                 [f"`python3 {name}` prints `{n + 1}) {extra}` right after `{n}) {items[-1]}`."])


def html_title(rng: random.Random) -> Drill:
    name = rng.choice(["home.html", "about.html", "status.html"])
    old = rng.choice(["Document", "New page", "TODO"])
    title = f"{rng.choice(WORDS).capitalize()} {rng.choice(NOUNS)} dashboard"
    page = ("<!doctype html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n</head>\n<body>\n"
            "<p>Loading...</p>\n</body>\n</html>\n")
    query = rng.choice([f"The page title of {name} is still `{old}`. Make it `{title}`, without touching the rest "
                        f"of the page.",
                        f"Put `{title}` in the <title> of {name} in place of `{old}`; everything else stays."])
    return Drill("html_title", "frontend_development", query, {name: page.format(old)}, {name: page.format(title)},
                 [f"grep -q {_shq(f'<title>{title}</title>')} {name} && grep -q '<p>Loading...</p>' {name} && "
                  f"test \"$(wc -l < {name})\" -eq 10"],
                 [f"{name} has the title `{title}` and the rest of the page is unchanged."])


def add_function(rng: random.Random) -> Drill:
    module = rng.choice(["helpers", "mathbits", "strutil", "tools"])
    picked = rng.sample(HELPERS, 2)
    (kname, kargs, _, kbody, kcheck), (name, args, desc, body, check) = picked
    before = f"def {kname}({kargs}):\n    {kbody}\n"
    after = before + f"\n\ndef {name}({args}):\n    {body}\n"
    query = rng.choice([f"{module}.py needs a function `{name}({args})` that returns {desc}. Leave `{kname}` "
                        f"unchanged.",
                        f"Please write `{name}({args})` in {module}.py, returning {desc}; `{kname}` must keep "
                        f"working as before."])
    return Drill("add_function", "algorithm", query, {f"{module}.py": before}, {f"{module}.py": after},
                 [f"python3 -c \"from {module} import {name}; assert {check}\"",
                  f"python3 -c \"from {module} import {kname}; assert {kcheck}\""],
                 [f"`{name}({args})` in {module}.py returns {desc}.", f"`{kname}` still works."])


def shell_fact(rng: random.Random) -> Drill:
    """A fact about the workspace found with one shell command, which the replay runs (``reference_runs``)
    before it writes the answer: the request names no command, so the agent has to choose one."""
    out = rng.choice(["count.txt", "answer.txt", "found.txt", "n.txt"])
    kind = rng.choice(["rows", "largest", "files", "errors"])
    workspace: dict[str, str] = {}
    if kind in ("largest", "files"):
        folder = rng.choice(["data", "dumps", "exports", "traces"])
        names = rng.sample([f"{w}.{ext}" for w in WORDS[:15] for ext in ("log", "csv", "bin")], rng.randint(3, 6))
        for name, lines in zip(names, rng.sample(range(1, 20), len(names))):  # sizes all different
            workspace[f"{folder}/{name}"] = ("x" * 19 + "\n") * lines
        if kind == "largest":
            answer = max(names, key=lambda n: len(workspace[f"{folder}/{n}"]))
            query = rng.choice([f"Find the biggest file in {folder}/, measured in bytes, and save its name (without "
                                f"the folder) to {out}.",
                                f"Of the files in {folder}/, which one takes the most bytes? Put just its file name "
                                f"in {out}."])
            run, requirement = f"ls -S {folder} | head -n 1", f"{out} names the largest file in {folder}/."
        else:
            answer = str(len(names))
            query = rng.choice([f"How many files are there in {folder}/? Save the number to {out}.",
                                f"Count the files in the {folder} folder and write that count into {out}."])
            run, requirement = f"ls {folder} | wc -l", f"{out} holds the number of files in {folder}/."
    elif kind == "rows":
        name = rng.choice(["samples.csv", "orders.csv", "visits.csv", "latency.csv"])
        rows = rng.randint(5, 40)
        workspace[name] = "id,value\n" + "".join(f"{i},{rng.randint(1, 999)}\n" for i in range(1, rows + 1))
        answer = str(rows)
        query = rng.choice([f"How many records does {name} have, not counting its header line? Put the count in "
                            f"{out}.",
                            f"{name} starts with one header line. Write the number of data lines below it to {out}."])
        run, requirement = f"tail -n +2 {name} | wc -l", f"{out} holds the number of data lines in {name}."
    else:
        name = rng.choice(["server.log", "build.log", "sync.log"])
        lines = [rng.choice(["INFO started", "INFO ok", "WARN slow", "ERROR timeout", "ERROR refused"])
                 for _ in range(rng.randint(8, 25))]
        workspace[name] = "\n".join(f"{i:03d} {line}" for i, line in enumerate(lines)) + "\n"
        answer = str(sum("ERROR" in line for line in lines))
        query = rng.choice([f"Count the lines of {name} that contain `ERROR` and write the count into {out}.",
                            f"How many `ERROR` lines are in {name}? Save that number as the only content of {out}."])
        run, requirement = f"grep -c ERROR {name}", f"{out} holds the number of lines of {name} with `ERROR`."
    return Drill("shell_fact", "data_analysis", query, workspace, {**workspace, out: answer + "\n"},
                 [f"test \"$(tr -d '[:space:]' < {out})\" = {_shq(answer)}"], [requirement],
                 extra={"reference_runs": run})


FAMILIES: dict[str, Callable[[random.Random], Drill]] = {
    f.__name__: f for f in (new_file, append_line, set_value, json_value, print_typo, run_record, rename,
                            menu_entry, html_title, add_function, shell_fact)}


def generate(per_family: int, seed: int) -> list[tuple[str, Drill]]:
    """``per_family`` drills of every family as (task id, drill), distinct requests, in a stable order."""
    rng = random.Random(seed)
    out: list[tuple[str, Drill]] = []
    seen: set[str] = set()
    for family, make in FAMILIES.items():
        made = 0
        for _ in range(per_family * 50):
            if made == per_family:
                break
            drill = make(rng)
            if drill.query in seen:
                continue
            seen.add(drill.query)
            made += 1
            out.append((f"drill-{family.replace('_', '-')}-{made:02d}", drill))
        if made < per_family:
            raise UserError(f"family {family}: only {made} distinct drills (asked for {per_family})")
    return out


def write(out_dir: Path, per_family: int, seed: int) -> int:
    """Write every drill under ``out_dir`` (replacing what is there) and return how many."""
    drills = generate(per_family, seed)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for task_id, d in drills:
        folder = tmp / task_id
        for part, files in (("workspace", d.workspace), ("solution", d.solution)):
            for rel, text in files.items():
                path = folder / part / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
        task = {"id": task_id, "source": "drill", "domain": "software", "category": d.category, "query": d.query,
                "verifier": {"kind": "tests", "commands": d.commands, "requirements": d.requirements},
                "provenance": {"author": "limi-pipelines drill generator", "family": d.family, "seed": seed,
                               "version": 1,
                               **({"reference_runs": [d.extra["reference_runs"]]} if d.extra.get("reference_runs")
                                  else {})}}
        (folder / "task.json").write_text(json.dumps(task, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return len(drills)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipelines.tools.drills", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/drills"), help="folder to (re)write (default: %(default)s)")
    parser.add_argument("--per-family", type=int, default=12, help="drills per family (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.per_family < 1:
        raise UserError("--per-family must be at least 1")
    count = write(args.out, args.per_family, args.seed)
    print(f"wrote {count} drills to {args.out}")


if __name__ == "__main__":
    main_guard(main)
