"""Mining every way a PR reaches the default branch: merges, titled merges, squashes, maintenance branches."""

from __future__ import annotations

import subprocess
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pytest

from pipelines.mine_prs import mine
from pipelines.prs.config import MinePRsParams, PRSource
from pipelines.prs.git import mine_git
from pipelines.prs.records import parse_time, read_prs, unified_diff
from tests.prs.pr_fixtures import sh

PLANTED = {1, 2, 3, 4, 5, 6}


def _day(day: int) -> str:
    return f"2024-01-{day:02d}T12:00:00+00:00"


def _change(repo: Path, name: str, text: str, message: str, day: int, author: str = "Alice") -> str:
    """Append ``text`` to ``name``, commit it on the current branch, return the commit's sha."""
    with (repo / name).open("a") as fh:
        fh.write(text)
    sh(repo, "add", name)
    sh(repo, "commit", "-qm", message, author=author, when=_day(day))
    return sh(repo, "rev-parse", "HEAD")


def _committed(repo: Path, sha: str) -> datetime:
    return parse_time(sh(repo, "show", "-s", "--format=%cI", sha))


def _merge(repo: Path, branch: str, message: str, day: int) -> str:
    sh(repo, "merge", "--no-ff", "-q", "-m", message, branch, when=_day(day))
    return sh(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def patterns_repo(tmp_path_factory) -> tuple[Path, dict[int, tuple[str, str, str]]]:
    """A history with each PR shape; returns the repository and the planted PRs' (base, head, merge) shas.

    main: #1 ``Merge pull request``, #2 a merge titled ``Add x (#2)``, #3 squash ``Fix y (#3)``, a direct
    commit, ``Merge branch '1.0.x'`` and later ``Merge remote-tracking branch 'origin/1.0.x'``.
    1.0.x (from #1's merge): #4 ``Merge pull request`` into 1.0.x; ``Merge branch '0.9.x' into 1.0.x``
    with #6 merged into 0.9.x (from the root); after the first forward merge, #5 squashed onto 1.0.x,
    #3 cherry-picked (its number a second time) and a direct release commit.
    """
    repo = tmp_path_factory.mktemp("patterns")
    sh(repo, "init", "-q", "-b", "main")
    for n in sorted(PLANTED):
        (repo / f"f{n}.txt").write_text(f"file {n}\n")
    (repo / "README.md").write_text("# Demo\n")
    (repo / "VERSION").write_text("1.0.0\n")
    sh(repo, "add", ".")
    sh(repo, "commit", "-qm", "Initial commit", when=_day(1))
    root = sh(repo, "rev-parse", "HEAD")
    planted: dict[int, tuple[str, str, str]] = {}

    sh(repo, "checkout", "-qb", "feat1")
    head = _change(repo, "f1.txt", "one\n", "Work on one", 2, author="Bob")
    sh(repo, "checkout", "-q", "main")
    planted[1] = (root, head, _merge(repo, "feat1", "Merge pull request #1 from x/feat1", 3))
    sh(repo, "branch", "1.0.x")

    sh(repo, "checkout", "-qb", "feat2")
    head = _change(repo, "f2.txt", "two\n", "Work on two", 4, author="Bob")
    sh(repo, "checkout", "-q", "main")
    planted[2] = (planted[1][2], head, _merge(repo, "feat2", "Add x (#2)", 5))
    squash = _change(repo, "f3.txt", "three\n", "Fix y (#3)", 6, author="Carol")
    planted[3] = (planted[2][2], squash, squash)

    sh(repo, "checkout", "-q", "1.0.x")
    sh(repo, "checkout", "-qb", "fix4")
    head = _change(repo, "f4.txt", "four\n", "Work on four", 7)
    sh(repo, "checkout", "-q", "1.0.x")
    planted[4] = (planted[1][2], head, _merge(repo, "fix4", "Merge pull request #4 from x/fix4", 8))

    sh(repo, "checkout", "-qb", "0.9.x", root)
    sh(repo, "checkout", "-qb", "fix6")
    head = _change(repo, "f6.txt", "six\n", "Work on six", 9)
    sh(repo, "checkout", "-q", "0.9.x")
    planted[6] = (root, head, _merge(repo, "fix6", "Merge pull request #6 from x/fix6", 10))
    sh(repo, "checkout", "-q", "1.0.x")
    old_line = _merge(repo, "0.9.x", "Merge branch '0.9.x' into 1.0.x", 11)

    sh(repo, "checkout", "-q", "main")
    _merge(repo, "1.0.x", "Merge branch '1.0.x'", 12)
    _change(repo, "README.md", "Tidied.\n", "Tidy docs", 13)

    sh(repo, "checkout", "-q", "1.0.x")
    squash = _change(repo, "f5.txt", "five\n", "Patch z (#5)", 14)
    planted[5] = (old_line, squash, squash)
    sh(repo, "cherry-pick", "-x", planted[3][1], when=_day(15))
    _change(repo, "VERSION", "1.0.1\n", "Release 1.0.1", 16)
    sh(repo, "checkout", "-q", "main")
    _merge(repo, "1.0.x", "Merge remote-tracking branch 'origin/1.0.x'", 17)
    return repo, planted


def test_every_planted_pr_is_found_once_with_its_base_head_and_files(patterns_repo):
    repo, planted = patterns_repo
    skipped: Counter = Counter()
    patterns: Counter = Counter()
    prs = list(mine_git(repo, skipped=skipped, patterns=patterns))
    numbers = [pr.number for pr in prs]
    assert sorted(numbers) == sorted(PLANTED)  # recall 100%, each PR once
    assert len(set(numbers) & PLANTED) / len(PLANTED) == 1.0
    # Newest first as the changes reached main: the second forward merge's #5, the first one's 0.9.x (#6)
    # and 1.0.x (#4) PRs, then main's own.
    assert numbers == [5, 6, 4, 3, 2, 1]
    for pr in prs:
        base, head, merge = planted[pr.number]
        assert (pr.base_sha, pr.head_sha) == (base, head), pr.number
        assert [(f.path, f.status, f.additions, f.deletions) for f in pr.files] == \
            [(f"f{pr.number}.txt", "modified", 1, 0)], pr.number
        assert pr.merged_at == _committed(repo, merge), pr.number  # the PR's own merge, not the forward merge
    by_number = {pr.number: pr for pr in prs}
    assert [(n, by_number[n].change_unit, by_number[n].title) for n in sorted(by_number)] == [
        (1, "merge", "Work on one"), (2, "merge", "Add x"), (3, "squash", "Fix y"), (4, "merge", "Work on four"),
        (5, "squash", "Patch z"), (6, "merge", "Work on six")]
    assert by_number[2].author == "Bob" and by_number[2].created_at.isoformat() == "2024-01-04T12:00:00+00:00"
    assert patterns == {"merge pull request": 1, "merge titled (#N)": 1, "squash (#N)": 1,
                        "merge pull request on a merged branch": 2, "squash (#N) on a merged branch": 1}
    # Not PRs: the two forward merges, the 0.9.x merge, 'Tidy docs', 'Release 1.0.1' and the root commit;
    # the cherry-picked #3 is a copy of the earlier merge.
    assert skipped == {"not a pull request merge or squash commit": 6,
                       "pull request number seen in an earlier merge": 1}


def test_each_patch_applies_at_its_base(patterns_repo, tmp_path):
    repo, _ = patterns_repo
    tree = tmp_path / "at_base"
    sh(repo, "worktree", "add", "-q", "--detach", str(tree), "HEAD")
    try:
        for pr in mine_git(repo):
            sh(tree, "checkout", "-q", "--detach", pr.base_sha)
            patch = tmp_path / f"{pr.number}.diff"
            patch.write_text(unified_diff(pr.files))
            result = subprocess.run(["git", "apply", "--check", str(patch)], cwd=tree, capture_output=True, text=True)
            assert result.returncode == 0, (pr.number, result.stderr)
    finally:
        sh(repo, "worktree", "remove", "--force", str(tree))


def test_the_earliest_merge_of_a_number_is_kept(patterns_repo):
    repo, planted = patterns_repo
    three = next(pr for pr in mine_git(repo) if pr.number == 3)
    assert three.head_sha == planted[3][1] and three.merged_at.isoformat() == "2024-01-06T12:00:00+00:00"
    # Pinned at the cherry-pick on 1.0.x alone, that copy is the only #3 and is mined in its place.
    pick = sh(repo, "rev-parse", "1.0.x~1")
    assert [(pr.number, pr.head_sha) for pr in mine_git(repo, rev=pick) if pr.number == 3] == [(3, pick)]


def test_window_and_limit_across_branches(patterns_repo):
    repo, _ = patterns_repo
    skipped: Counter = Counter()
    assert [pr.number for pr in mine_git(repo, since=date(2024, 1, 8), skipped=skipped)] == [5, 6, 4]
    assert skipped["merged outside the date window"] == 3
    assert [pr.number for pr in mine_git(repo, until=date(2024, 1, 8))] == [4, 3, 2, 1]
    assert [pr.number for pr in mine_git(repo, limit=2)] == [5, 6]


def test_mining_report_counts_the_patterns(patterns_repo, tmp_path):
    repo, _ = patterns_repo
    params = MinePRsParams(sources=[PRSource(kind="git", repo=str(repo), limit=0)])
    report = mine(params, tmp_path / "prs.jsonl", tmp_path, report_path=tmp_path / "report.json")
    source = report["sources"][0]
    assert source["prs"] == 6 and source["change_units"] == {"merge": 4, "squash": 2}
    assert source["patterns"] == {"merge pull request": 1, "merge pull request on a merged branch": 2,
                                  "merge titled (#N)": 1, "squash (#N)": 1, "squash (#N) on a merged branch": 1}
    assert sorted(pr.number for pr in read_prs(tmp_path / "prs.jsonl")) == sorted(PLANTED)


def test_prs_only_on_a_merged_branch_are_mined_not_single_commits(tmp_path):
    """A main line of direct commits and branch merges whose PRs were all merged into ``develop``."""
    repo = tmp_path / "flow"
    repo.mkdir()
    sh(repo, "init", "-q", "-b", "main")
    _change(repo, "f1.txt", "base\n", "Initial commit", 1)
    sh(repo, "checkout", "-qb", "develop")
    squash = _change(repo, "f1.txt", "one\n", "Do one (#1)", 2)
    sh(repo, "checkout", "-q", "main")
    _merge(repo, "develop", "Merge branch 'develop'", 3)
    _change(repo, "f1.txt", "hotfix\n", "Hotfix", 4)
    skipped: Counter = Counter()
    prs = list(mine_git(repo, skipped=skipped))
    assert [(pr.number, pr.base_sha, pr.head_sha) for pr in prs] == [(1, sh(repo, "rev-parse", "HEAD~2"), squash)]
    assert skipped == {"not a pull request merge or squash commit": 3}


def test_prs_on_a_branch_forward_merged_by_a_pr_of_its_own(tmp_path):
    """``stable`` gets PR #1 (a merge) and #2 (a squash); the PR ``Merge stable into main (#3)`` brings it in."""
    repo = tmp_path / "forward"
    repo.mkdir()
    sh(repo, "init", "-q", "-b", "main")
    root = _change(repo, "f1.txt", "base\n", "Initial commit", 1)
    (repo / "f2.txt").write_text("base\n")
    sh(repo, "add", "f2.txt")
    sh(repo, "commit", "-qm", "Add f2", when=_day(2))
    sh(repo, "checkout", "-qb", "stable", root)
    sh(repo, "checkout", "-qb", "fix")
    fix = _change(repo, "f1.txt", "one\n", "Work on one", 3)
    sh(repo, "checkout", "-q", "stable")
    merge = _merge(repo, "fix", "Merge pull request #1 from x/fix", 4)
    squash = _change(repo, "f1.txt", "two\n", "Fix two (#2)", 5)
    sh(repo, "checkout", "-q", "main")
    forward = _merge(repo, "stable", "Merge stable into main (#3)", 6)
    skipped: Counter = Counter()
    patterns: Counter = Counter()
    prs = list(mine_git(repo, skipped=skipped, patterns=patterns))
    assert [(pr.number, pr.base_sha, pr.head_sha) for pr in prs] == [
        (3, sh(repo, "rev-parse", "HEAD~1"), squash), (2, merge, squash), (1, root, fix)]
    assert prs[0].merged_at == _committed(repo, forward) and prs[2].merged_at == _committed(repo, merge)
    assert patterns == {"merge titled (#N)": 1, "merge pull request on a merged branch": 1,
                        "squash (#N) on a merged branch": 1}
    assert skipped == {"not a pull request merge or squash commit": 2}  # 'Add f2' and the root; 'Work on one' is #1's
