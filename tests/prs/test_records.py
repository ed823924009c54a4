"""PullRequest records: validation on read, and diffs that apply at the base commit."""

from __future__ import annotations

import subprocess

import pytest

from pipelines.core.errors import UserError
from pipelines.prs.git import mine_git
from pipelines.prs.records import read_prs, unified_diff
from tests.prs.pr_fixtures import pr_repo, sh  # noqa: F401 (pr_repo is a fixture)


def test_unified_diff_applies_at_base(pr_repo, tmp_path):
    merge = next(pr for pr in mine_git(pr_repo) if pr.number == 7)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(pr_repo), str(clone)], check=True)
    sh(clone, "checkout", "-q", merge.base_sha)
    (tmp_path / "pr.diff").write_text(unified_diff(merge.files))
    sh(clone, "apply", str(tmp_path / "pr.diff"))
    for name in ("README.md", "feature.py", "new_name.txt"):
        assert (clone / name).read_bytes() == sh(pr_repo, "show", f"{merge.head_sha}:{name}").encode() + b"\n"
    assert not (clone / "old_name.txt").exists()


def test_read_prs_names_file_and_line(tmp_path):
    path = tmp_path / "prs.jsonl"
    path.write_text('{"repo": "o/r"}\n')
    with pytest.raises(UserError, match=rf"{path}:1: PullRequest field"):
        read_prs(path)
