"""mine_prs as a stage: params, outputs and report, the command line, tokens kept out of every output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipelines.core.errors import UserError
from pipelines.prs.config import MinePRsParams, PRSource
from pipelines.mine_prs import mine
from pipelines.prs.records import read_prs
from tests.prs.pr_fixtures import (TOKEN, FakeGitHub, all_text, github, pr_repo,  # noqa: F401 (fixtures)
                                   serve_repo, sh)

REPO = Path(__file__).resolve().parents[1]


def github_params(fake: FakeGitHub, cache: Path, **source) -> MinePRsParams:
    return MinePRsParams(sources=[PRSource(kind="github", repo="o/r", limit=0, **source)], github_api=fake.url,
                         cache_dir=str(cache))


def test_github_pagination_then_etag_cache(github, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    serve_repo(github)
    cache, out = tmp_path / "cache", tmp_path / "prs.jsonl"
    report = mine(github_params(github, cache), out, tmp_path, report_path=tmp_path / "report.json")

    prs = read_prs(out)
    assert [pr.number for pr in prs] == [3, 1]
    three, one = prs
    assert [f.path for f in three.files] == ["src/a.py", "src/new.py", "logo.png"]  # both pages of files
    assert (three.additions, three.deletions, three.changed_files) == (4, 1, 3)
    assert three.files[2].binary and three.files[2].patch is None and not three.files[0].binary
    assert (three.source, three.change_unit, three.labels, three.author) == ("github", "pr", ["bug"], "alice")
    assert three.merged_at.isoformat() == "2024-03-01T00:00:00+00:00"
    assert one.files[0].status == "renamed" and one.files[0].previous_path == "a.py" and not one.files[0].binary
    assert one.files[1].status == "deleted"
    assert report["skipped"] == {"closed without merging": 1} and report["repos"] == {"o/r": 2}
    assert json.loads((tmp_path / "report.json").read_text())["total"] == 2
    first_run = list(github.requests)
    assert len(first_run) == 5
    assert all(h.get("authorization") == f"Bearer {TOKEN}" for _, h in first_run)
    assert not any("if-none-match" in h for _, h in first_run)

    # Second run: every request is conditional, GitHub answers 304 and the cached bodies are used.
    github.requests.clear()
    mine(github_params(github, cache), tmp_path / "again.jsonl", tmp_path)
    assert len(github.requests) == 5 and github.not_modified == 5
    assert all(h.get("if-none-match", "").startswith('"') for _, h in github.requests)
    assert (tmp_path / "again.jsonl").read_text() == out.read_text()
    assert list(cache.rglob("*.json")) and TOKEN not in all_text(cache)


def test_rejected_token_is_one_clear_line_and_nothing_is_written(github, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    github.add("/repos/o/r/pulls", (401, {"message": "Bad credentials"}, {}))
    cache, out = tmp_path / "cache", tmp_path / "data" / "prs.jsonl"
    with pytest.raises(UserError) as err:
        mine(github_params(github, cache), out, tmp_path, report_path=tmp_path / "data" / "report.json")
    assert str(err.value) == "GitHub rejected the token from $GITHUB_TOKEN (401)"
    assert not out.exists() and not (tmp_path / "data" / "report.json").exists()
    assert not cache.exists() or TOKEN not in all_text(cache)

    # The same through the command line: one line on stderr, exit status 2, no token anywhere.
    result = subprocess.run([sys.executable, "-m", "pipelines.mine_prs", "--repo", "o/r", "--out", str(out),
                             "--github-api", github.url], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(cache)})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: GitHub rejected the token from $GITHUB_TOKEN (401)"
    assert TOKEN not in result.stderr + result.stdout and not out.exists()
    assert not cache.exists() or TOKEN not in all_text(cache)


def test_cli_mines_a_local_repo(pr_repo, tmp_path):
    out = tmp_path / "out" / "prs.jsonl"
    result = subprocess.run([sys.executable, "-m", "pipelines.mine_prs", "--repo", str(pr_repo), "--out", str(out),
                             "--since", "2024-01-01", "--report", str(tmp_path / "report.json")],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    prs = read_prs(out)
    assert [(pr.number, pr.source, pr.repo) for pr in prs] == [(8, "git", str(pr_repo)), (7, "git", str(pr_repo))]
    assert json.loads((tmp_path / "report.json").read_text())["sources"][0]["change_units"] == {"squash": 1, "merge": 1}


def test_params_check_each_source():
    assert MinePRsParams().sources[0].kind == "git" and MinePRsParams().sources[0].repo == "."
    with pytest.raises(ValidationError, match="needs uri"):
        PRSource(kind="dump")
    with pytest.raises(ValidationError, match="owner/name"):
        PRSource(kind="github", repo="not a repo")
    with pytest.raises(ValidationError, match="after until"):
        PRSource(kind="git", since=date(2024, 2, 1), until=date(2024, 1, 1))
    with pytest.raises(ValidationError, match="Extra inputs"):
        MinePRsParams.model_validate({"sources": [{"kind": "git", "branch": "main"}]})


def test_token_never_reaches_records_logs_or_mlflow(github, tmp_path):
    """mine_prs and pr_queries run as stages (MLflow on) with GITHUB_TOKEN set: the marker is nowhere."""
    import yaml

    from tests.conftest import make_project, run_module

    serve_repo(github)
    root = make_project(tmp_path / "proj")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["mine_prs"] = {"sources": [{"kind": "github", "repo": "o/r", "limit": 0}], "github_api": github.url,
                          "cache_dir": "cache/github"}
    script = root / "teacher.jsonl"
    script.write_text("")  # a teacher with nothing to say: every PR falls back to the template
    params["llm"]["models"]["t"] = {"backend": "scripted", "script": str(script)}
    params["llm"]["roles"]["teacher"] = "t"
    params["pr_queries"]["tokenizer"] = None  # this project has no models/base: count characters / 4
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    env = {"GITHUB_TOKEN": TOKEN, "OPENAI_API_KEY": TOKEN + "-openai"}
    logs = ""
    for module in ("pipelines.mine_prs", "pipelines.pr_queries"):
        result = run_module(module, root=root, env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        logs += result.stdout + result.stderr
    assert (root / "data/queries/pr.jsonl").read_text().count("\n") >= 1
    assert TOKEN not in logs
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert TOKEN.encode() not in path.read_bytes(), path


# ---------------------------------------------------------------- a pinned git source reproduces
def plain_history(repo: Path) -> str:
    """Three plain commits (no PR subjects, as in this project's history); returns the last one's sha."""
    repo.mkdir()
    sh(repo, "init", "-q", "-b", "main")
    for i in range(3):
        (repo / "notes.txt").write_text("".join(f"note {j}\n" for j in range(i + 1)))
        (repo / f"file{i}.py").write_text(f"VALUE = {i}\n")
        sh(repo, "add", ".")
        sh(repo, "commit", "-qm", f"Note {i}", when=f"2024-01-0{i + 1}T00:00:00+00:00")
    return sh(repo, "rev-parse", "HEAD")


class RecordingTracker:
    def __init__(self) -> None:
        self.figures: list[dict] = []

    def record_timings(self, figures: dict, root: Path | None = None) -> Path:
        self.figures.append(figures)
        return Path(os.devnull)


def test_pinned_git_source_gives_byte_identical_outputs_after_new_commits(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    pinned = plain_history(repo)
    params = MinePRsParams(sources=[PRSource(kind="git", repo="repo", rev=pinned)])
    tracker = RecordingTracker()
    first, second = tmp_path / "first", tmp_path / "second"
    mine(params, first / "prs.jsonl", tmp_path, report_path=first / "report.json", tracker=tracker)

    # The branch moves on (a squash commit that would switch the history to PR mode), the clone gains a GitHub
    # remote, and the user's git config asks for other hunks and another file order: none of it may show.
    (repo / "file0.py").write_text("VALUE = 10\n")
    sh(repo, "commit", "-qam", "Change the value (#9)", when="2024-02-01T00:00:00+00:00")
    sh(repo, "remote", "add", "origin", "https://github.com/o/r.git")
    (tmp_path / "order").write_text("file2.py\nnotes.txt\n")
    (tmp_path / "gitconfig").write_text(f"[diff]\n\tcontext = 1\n\talgorithm = histogram\n\tnoprefix = true\n"
                                        f"\torderFile = {tmp_path / 'order'}\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    mine(params, second / "prs.jsonl", tmp_path, report_path=second / "report.json", tracker=tracker)

    for name in ("prs.jsonl", "report.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    prs = read_prs(first / "prs.jsonl")
    assert [pr.title for pr in prs] == ["Note 2", "Note 1"] and prs[0].head_sha == pinned
    assert [f.path for f in prs[0].files] == ["file2.py", "notes.txt"] and prs[0].url is None
    report = json.loads((first / "report.json").read_text())
    assert report["sources"][0]["rev"] == pinned and "github_requests" not in report
    assert [sorted(f) for f in tracker.figures] == [["github_requests", "seconds"]] * 2  # timings go to the tracker
    mine(MinePRsParams(sources=[PRSource(kind="git", repo="repo")]), tmp_path / "head.jsonl", tmp_path)
    assert [pr.number for pr in read_prs(tmp_path / "head.jsonl")] == [9]  # unpinned, HEAD's new PR shows


def test_pinned_rev_missing_or_shallow_names_the_params_key(tmp_path):
    pinned = plain_history(tmp_path / "repo")
    out = tmp_path / "out" / "prs.jsonl"
    (tmp_path / "x.jsonl").write_text("")
    missing = MinePRsParams(sources=[PRSource(kind="dump", uri=str(tmp_path / "x.jsonl")),
                                     PRSource(kind="git", repo="repo", rev="0" * 40)])
    with pytest.raises(UserError, match=r"^params\.yaml: mine_prs\.sources\[1\]\.rev: commit 0{40} is not in the "
                                        r"clone at .*repo .*fetch --unshallow"):
        mine(missing, out, tmp_path, report_path=out.parent / "report.json")
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{tmp_path / 'repo'}", str(tmp_path / "shallow")],
                   check=True, capture_output=True)
    shallow = MinePRsParams(sources=[PRSource(kind="git", repo="shallow", rev=pinned)])
    with pytest.raises(UserError, match=r"^params\.yaml: mine_prs\.sources\[0\]\.rev: .*shallow is a shallow clone.*"
                                        r"git -C .*shallow fetch --unshallow"):
        mine(shallow, out, tmp_path)
    assert not out.parent.exists()  # nothing written


def test_rev_is_a_full_sha_of_a_git_source():
    assert PRSource(kind="git", rev="a" * 40).rev == "a" * 40
    with pytest.raises(ValidationError, match="should match pattern"):
        PRSource(kind="git", rev="28d2393")
    with pytest.raises(ValidationError, match="only for kind: git"):
        PRSource(kind="github", repo="o/r", rev="a" * 40)


def test_the_shipped_example_bundle_is_what_its_script_builds(tmp_path):
    from pipelines.tools.example_repo import write_bundle

    heads = lambda bundle: subprocess.run(["git", "bundle", "list-heads", str(bundle)], capture_output=True,  # noqa: E731
                                          text=True, check=True).stdout
    built = write_bundle(tmp_path / "example.bundle")
    assert heads(built) == heads(REPO / "data" / "example-repo.bundle")
    assert "refs/heads/main" in heads(built) and "refs/heads/0.1.x" in heads(built)


def test_a_bundle_is_mined_from_the_command_line_and_a_bad_one_is_named(tmp_path):
    out = tmp_path / "prs.jsonl"
    result = subprocess.run([sys.executable, "-m", "pipelines.mine_prs", "--repo", "data/example-repo.bundle",
                             "--out", str(out)], capture_output=True, text=True, timeout=60, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert [pr.number for pr in read_prs(out)] == [7, 6, 4, 5, 3, 2, 1]
    assert {pr.repo for pr in read_prs(out)} == {"data/example-repo.bundle"}
    fake = tmp_path / "fake.bundle"
    fake.write_text("not a bundle\n")
    with pytest.raises(UserError, match="fake.bundle: neither a directory nor a git bundle"):
        mine(MinePRsParams(sources=[PRSource(kind="git", repo=str(fake))]), tmp_path / "x.jsonl", tmp_path)
