"""Mining a local clone: temp git repositories built with git."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from datetime import date

import pytest

from pipelines.core.errors import UserError
from pipelines.prs.git import RevisionError, mine_git
from tests.prs.pr_fixtures import pr_repo, sh  # noqa: F401 (pr_repo is a fixture)


def test_git_merges_and_squashes(pr_repo):
    skipped: Counter = Counter()
    prs = list(mine_git(pr_repo, skipped=skipped))
    assert [(pr.number, pr.change_unit) for pr in prs] == [(8, "squash"), (7, "merge")]
    assert skipped == {"not a pull request merge or squash commit": 2}  # 'Tweak docs' and the initial commit

    squash, merge = prs
    merge_sha = sh(pr_repo, "rev-parse", "HEAD~2")
    assert merge.base_sha == sh(pr_repo, "rev-parse", f"{merge_sha}^1")
    assert merge.head_sha == sh(pr_repo, "rev-parse", "feature")
    assert (merge.title, merge.body, merge.author) == ("Add the feature module", "It does one thing.", "Bob")
    assert merge.created_at.isoformat() == "2024-02-01T09:00:00+00:00"
    assert merge.merged_at.isoformat() == "2024-02-10T15:00:00+00:00"
    files = {f.path: f for f in merge.files}
    assert {p: f.status for p, f in files.items()} == {"README.md": "modified", "feature.py": "added",
                                                       "image.png": "added", "new_name.txt": "renamed"}
    assert files["image.png"].binary and files["image.png"].patch is None
    assert files["new_name.txt"].previous_path == "old_name.txt" and files["new_name.txt"].patch == ""
    assert files["feature.py"].patch == "@@ -0,0 +1,2 @@\n+def feature():\n+    return 1"
    assert (merge.additions, merge.deletions, merge.changed_files) == (4, 0, 4)

    assert squash.base_sha == sh(pr_repo, "rev-parse", "HEAD~2")
    assert squash.head_sha == sh(pr_repo, "rev-parse", "HEAD~1")
    assert (squash.title, squash.body, squash.author) == ("Add thing", "* squashed commit", "Carol")
    latin = next(f for f in squash.files if f.path == "latin.txt")
    assert latin.patch == "@@ -0,0 +1 @@\n+caf\ufffd na\ufffdve" and not latin.binary
    line = squash.model_dump_json()
    assert json.loads(line)["files"][0]["path"] and line.encode("utf-8")  # valid JSON, encodable UTF-8


def test_git_window_and_limit(pr_repo):
    assert [pr.number for pr in mine_git(pr_repo, since=date(2024, 3, 1))] == [8]
    assert [pr.number for pr in mine_git(pr_repo, until=date(2024, 2, 28))] == [7]
    assert [pr.number for pr in mine_git(pr_repo, limit=1)] == [8]


def test_history_without_prs_falls_back_to_commits(tmp_path):
    repo = tmp_path / "plain"
    repo.mkdir()
    sh(repo, "init", "-q", "-b", "main")
    for i in range(3):
        (repo / "notes.txt").write_text("".join(f"note {j}\n" for j in range(i + 1)))
        sh(repo, "add", ".")
        sh(repo, "commit", "-qm", f"Note {i}", when=f"2024-01-0{i + 1}T00:00:00+00:00")
    skipped: Counter = Counter()
    prs = list(mine_git(repo, skipped=skipped, repo_name="plain"))
    assert [(pr.change_unit, pr.number, pr.title) for pr in prs] == [("commit", None, "Note 2"),
                                                                      ("commit", None, "Note 1")]
    assert prs[0].base_sha == sh(repo, "rev-parse", "HEAD~1") and prs[0].head_sha == sh(repo, "rev-parse", "HEAD")
    assert prs[0].key == f"plain@{prs[0].head_sha[:12]}" and skipped == {"root commit": 1}
    assert prs[0].files[0].patch.endswith("+note 2")


def test_not_a_repository_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a git repository"):
        list(mine_git(tmp_path))


def test_rev_pins_the_history_and_leaves_out_the_remote(pr_repo, tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(pr_repo), str(clone)], check=True)
    sh(clone, "remote", "set-url", "origin", "git@github.com:o/r.git")
    squash = sh(clone, "rev-parse", "HEAD~1")
    merge = sh(clone, "rev-parse", "HEAD~2")
    assert [(pr.number, pr.url) for pr in mine_git(clone)] == [(8, "https://github.com/o/r/pull/8"),
                                                              (7, "https://github.com/o/r/pull/7")]
    assert [(pr.number, pr.url) for pr in mine_git(clone, rev=squash)] == [(8, None), (7, None)]
    assert [pr.number for pr in mine_git(clone, rev=merge)] == [7]
    with pytest.raises(RevisionError, match=f"commit {'0' * 40} is not in the clone at {clone}"):
        list(mine_git(clone, rev="0" * 40))
