"""The example repository the default run mines: ``textkit``, a tiny Python package with pytest tests and a
history of pull requests merged in every way the git miner knows, shipped as ``data/example-repo.bundle``.

    python -m pipelines.tools.example_repo --out data/example-repo.bundle

Rerunning it writes a bundle with the same commits (names, e-mails and dates are fixed; only git's pack
layout may differ between git versions). What the history holds, oldest first:

==== ============================================================ ==================================== ================
PR   change                                                        how it was merged                    verified by
==== ============================================================ ==================================== ================
#1   slugify drops punctuation (code + a new test)                 ``Merge pull request #1 from ...``   tests
#2   word_count (code + a new test module)                         merge titled ``... (#2)``            tests
#3   truncate stays within the width (code + a new test)           squash ``... (#3)``                  tests
#4   title_case keeps apostrophes (code + a new test)              PR into ``0.1.x``, then              tests
                                                                   ``Merge branch '0.1.x'``
#5   slugify takes a separator (code only)                         squash                               judge
#6   more word_count tests (tests only, already passing)           squash                               judge
#7   README (docs only)                                            squash                               (filtered out)
==== ============================================================ ==================================== ================
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

from pipelines.core.console import main_guard
from pipelines.core.errors import UserError

IDENTITY = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_COMMITTER_NAME": "Maintainer",
            "GIT_COMMITTER_EMAIL": "maintainer@example.invalid"}

INITIAL = {
    "pyproject.toml": '[project]\nname = "textkit"\nversion = "0.1.0"\n'
                      'description = "Small text helpers: slugs, truncation, title case."\n'
                      'requires-python = ">=3.9"\ndependencies = []\n\n'
                      '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n',
    "README.md": "# textkit\n\nSmall text helpers.\n",
    "textkit/__init__.py": '"""Small text helpers."""\n\nfrom textkit.case import title_case\n'
                           'from textkit.slug import slugify\nfrom textkit.wrap import truncate\n\n'
                           '__all__ = ["slugify", "title_case", "truncate"]\n',
    "textkit/slug.py": '"""URL slugs."""\n\n\ndef slugify(text):\n'
                       '    """A lower-case slug of ``text`` with its words joined by hyphens."""\n'
                       '    return "-".join(text.lower().split())\n',
    "textkit/wrap.py": '"""Shortening text."""\n\n\ndef truncate(text, width, suffix="..."):\n'
                       '    """``text`` cut to at most ``width`` characters, ending in ``suffix`` when it was cut."""\n'
                       '    if len(text) <= width:\n        return text\n    return text[:width] + suffix\n',
    "textkit/case.py": '"""Title case."""\n\n\ndef title_case(text):\n'
                       '    """``text`` with the first letter of every word in upper case."""\n'
                       '    return text.title()\n',
    "tests/test_slug.py": 'from textkit import slugify\n\n\ndef test_lowercases_and_joins_words():\n'
                          '    assert slugify("Hello World") == "hello-world"\n\n\n'
                          'def test_collapses_whitespace():\n    assert slugify("  many   spaces ") == "many-spaces"\n',
    "tests/test_wrap.py": 'from textkit import truncate\n\n\ndef test_short_text_is_unchanged():\n'
                          '    assert truncate("short", 10) == "short"\n',
    "tests/test_case.py": 'from textkit import title_case\n\n\ndef test_capitalises_each_word():\n'
                          '    assert title_case("hello world") == "Hello World"\n',
}

SLUG_PUNCTUATION = '"""URL slugs."""\n\nimport re\n\n\ndef slugify(text):\n' \
                   '    """A lower-case slug of ``text``: its runs of letters and digits joined by hyphens."""\n' \
                   '    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))\n'
SLUG_SEPARATOR = '"""URL slugs."""\n\nimport re\n\n\ndef slugify(text, sep="-"):\n' \
                 '    """A lower-case slug of ``text``: its runs of letters and digits joined by ``sep``."""\n' \
                 '    return sep.join(re.findall(r"[a-z0-9]+", text.lower()))\n'
TEST_PUNCTUATION = '\n\ndef test_drops_punctuation():\n    assert slugify("Hello, World!") == "hello-world"\n'
COUNT = '"""Counting words."""\n\n\ndef word_count(text):\n' \
        '    """How many words ``text`` has (runs of characters between whitespace)."""\n' \
        '    return len(text.split())\n'
INIT_WITH_COUNT = '"""Small text helpers."""\n\nfrom textkit.case import title_case\n' \
                  'from textkit.count import word_count\nfrom textkit.slug import slugify\n' \
                  'from textkit.wrap import truncate\n\n__all__ = ["slugify", "title_case", "truncate", "word_count"]\n'
TEST_COUNT = 'from textkit import word_count\n\n\ndef test_counts_words():\n' \
             '    assert word_count("one two  three") == 3\n\n\ndef test_empty_text_has_no_words():\n' \
             '    assert word_count("") == 0\n'
TEST_COUNT_MORE = '\n\ndef test_newlines_and_tabs_separate_words():\n' \
                  '    assert word_count("one\\ntwo\\tthree") == 3\n'
WRAP_FIXED = '"""Shortening text."""\n\n\ndef truncate(text, width, suffix="..."):\n' \
             '    """``text`` cut to at most ``width`` characters, ending in ``suffix`` when it was cut."""\n' \
             '    if len(text) <= width:\n        return text\n' \
             '    return text[:max(0, width - len(suffix))] + suffix\n'
TEST_WIDTH = '\n\ndef test_result_fits_the_width():\n    assert truncate("abcdefghij", 6) == "abc..."\n' \
             '    assert len(truncate("a long sentence here", 10)) == 10\n'
CASE_FIXED = '"""Title case."""\n\n\ndef title_case(text):\n' \
             '    """``text`` with the first letter of every word in upper case (the rest as it was)."""\n' \
             '    return " ".join(word[:1].upper() + word[1:] for word in text.split(" "))\n'
TEST_APOSTROPHE = '\n\ndef test_letters_after_an_apostrophe_stay_lower_case():\n' \
                  '    assert title_case("don\'t stop") == "Don\'t Stop"\n'
README_MORE = "# textkit\n\nSmall text helpers.\n\n- `slugify(text, sep)`: URL slugs\n" \
              "- `truncate(text, width)`: shortened text\n- `title_case(text)`: title case\n" \
              "- `word_count(text)`: words in a text\n"


class _Repo:
    """A repository being written, every commit with fixed names, e-mails and dates."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str, day: int = 1, author: str = "Ada") -> str:
        when = f"2024-03-{day:02d}T10:00:00+00:00"
        env = {**os.environ, **IDENTITY, "GIT_AUTHOR_NAME": author,
               "GIT_AUTHOR_EMAIL": f"{author.lower()}@example.invalid", "GIT_AUTHOR_DATE": when,
               "GIT_COMMITTER_DATE": when}
        proc = subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "core.autocrlf=false", *args],
                              cwd=self.path, env=env, capture_output=True, text=True)
        if proc.returncode:
            raise UserError(f"git {' '.join(args[:2])} failed: {proc.stderr.strip()[-300:]}")
        return proc.stdout.strip()

    def write(self, files: dict[str, str], append: bool = False) -> None:
        for name, text in files.items():
            path = self.path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text((path.read_text() if append else "") + text)

    def commit(self, message: str, day: int, author: str = "Ada") -> None:
        self.git("add", "-A", day=day, author=author)
        self.git("commit", "-q", "-m", message, day=day, author=author)

    def merge(self, branch: str, message: str, day: int) -> None:
        self.git("merge", "--no-ff", "-q", "-m", message, branch, day=day, author="Maintainer")
        self.git("branch", "-q", "-D", branch, day=day)


def build_history(path: Path) -> Path:
    """Write the example repository (see the module docstring) into the new folder ``path``; returns it."""
    repo = _Repo(path)
    repo.write(INITIAL)
    repo.commit("Initial textkit: slugs, truncation, title case", 1)

    repo.git("checkout", "-q", "-b", "ada/slug-punctuation")
    repo.write({"textkit/slug.py": SLUG_PUNCTUATION})
    repo.write({"tests/test_slug.py": TEST_PUNCTUATION}, append=True)
    repo.commit("Drop punctuation from slugs", 4)
    repo.git("checkout", "-q", "main")
    repo.merge("ada/slug-punctuation", "Merge pull request #1 from ada/slug-punctuation\n\nDrop punctuation from "
               "slugs\n\nslugify kept commas and exclamation marks in its slugs; it now keeps only letters and "
               "digits.", 5)
    repo.git("branch", "0.1.x")

    repo.git("checkout", "-q", "-b", "bob/word-count")
    repo.write({"textkit/count.py": COUNT, "textkit/__init__.py": INIT_WITH_COUNT, "tests/test_count.py": TEST_COUNT})
    repo.commit("Add word_count", 7, author="Bob")
    repo.git("checkout", "-q", "main")
    repo.merge("bob/word-count", "Add word counting (#2)\n\nA word_count helper that counts the words of a text.", 8)

    repo.write({"textkit/wrap.py": WRAP_FIXED})
    repo.write({"tests/test_wrap.py": TEST_WIDTH}, append=True)
    repo.commit("Keep truncated text within the width (#3)\n\ntruncate returned width characters plus the suffix, "
                "so its result was longer than asked for.", 9, author="Carol")

    repo.git("checkout", "-q", "0.1.x")
    repo.git("checkout", "-q", "-b", "dan/title-apostrophes")
    repo.write({"textkit/case.py": CASE_FIXED})
    repo.write({"tests/test_case.py": TEST_APOSTROPHE}, append=True)
    repo.commit("Keep letters after apostrophes lower case", 10, author="Dan")
    repo.git("checkout", "-q", "0.1.x")
    repo.merge("dan/title-apostrophes", "Merge pull request #4 from dan/title-apostrophes\n\nTitle case keeps "
               "apostrophes\n\ntitle_case(\"don't stop\") gave \"Don'T Stop\".", 11)

    repo.git("checkout", "-q", "main")
    repo.write({"textkit/slug.py": SLUG_SEPARATOR})
    repo.commit("Let slugify take a separator (#5)\n\nslugify(text, sep=\"_\") joins the words with underscores.", 12)
    repo.git("merge", "--no-ff", "-q", "-m", "Merge branch '0.1.x'", "0.1.x", day=13, author="Maintainer")
    repo.write({"tests/test_count.py": TEST_COUNT_MORE}, append=True)
    repo.commit("Test word counting across newlines and tabs (#6)", 14, author="Bob")
    repo.write({"README.md": README_MORE})
    repo.commit("Document the helpers in the README (#7)", 15)
    return path


def write_bundle(out: Path) -> Path:
    """Build the history in a temporary folder and write it to ``out`` as a git bundle of every branch."""
    with tempfile.TemporaryDirectory(prefix="limi-example-") as tmp:
        repo = build_history(Path(tmp) / "textkit")
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        subprocess.run(["git", "bundle", "create", "-q", str(partial.resolve()), "--all"], cwd=repo, check=True,
                       capture_output=True, env={**os.environ, **IDENTITY})
        os.replace(partial, out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.tools.example_repo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/example-repo.bundle", help="the bundle to write")
    args = parser.parse_args()
    print(write_bundle(Path(args.out)))
    return 0


if __name__ == "__main__":
    main_guard(main)
