"""LIMI's filters on mined pull requests."""

import tempfile
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
import yaml

from pipelines.core.errors import ParamsError, UserError
from pipelines.core.params import parse_params
from pipelines.prs.config import PRQueriesParams
from pipelines.prs.filters import apply_filters, approx_tokens, filter_reason, patch_token_counter
from pipelines.prs.git import mine_git
from pipelines.prs.records import unified_diff
from tests.prs.pr_fixtures import make_pr, repo_with_prs, word_tokenizer


def test_filters():
    params = PRQueriesParams(max_patch_tokens=50, single_file=True, cutoff=date(2020, 1, 1), per_repo_cap=1)
    prs = list(mine_git(repo_with_prs(Path(tempfile.mkdtemp()))))
    reasons = {pr.title: filter_reason(pr, params, Counter()) for pr in prs}
    assert reasons["Fix add returning the difference"] is None
    assert reasons["Describe the module"] == "docs or markdown only"
    fix = next(pr for pr in prs if pr.title.startswith("Fix"))
    assert filter_reason(fix, params.model_copy(update={"max_patch_tokens": 5}), Counter()) == "patch over the token budget"
    assert filter_reason(fix, params, Counter({fix.repo: 1})) == "per-repo cap reached"
    late = params.model_copy(update={"cutoff": date(2999, 1, 1)})
    assert filter_reason(fix, late, Counter()) == "before the temporal cutoff"


def day(n: int) -> str:
    return f"2024-01-{n:02d}T12:00:00Z"


def test_markdown_switches_and_single_file_count_their_reasons():
    prs = [make_pr(number=1, files=("README.md", "docs/guide.rst")),    # docs only
           make_pr(number=2, files=("src/a.py", "CHANGELOG.md")),       # code and Markdown
           make_pr(number=3, files=("src/a.py", "src/b.py")),           # two files
           make_pr(number=4, files=("src/a.py",), binary=("logo.png",)),  # one text file and a binary one
           make_pr(number=5, files=("src/a.py",))]
    base = PRQueriesParams(tokenizer=None, per_repo_cap=0)
    kept, dropped = apply_filters(prs, base)
    assert [p.number for p in kept] == [2, 3, 4, 5] and dropped == {"docs or markdown only": 1}
    kept, dropped = apply_filters(prs, base.model_copy(update={"drop_docs_only": False}))
    assert [p.number for p in kept] == [1, 2, 3, 4, 5] and dropped == {}
    kept, dropped = apply_filters(prs, base.model_copy(update={"drop_markdown": True}))
    assert [p.number for p in kept] == [3, 4, 5]
    assert dropped == {"docs or markdown only": 1, "touches a markdown file": 1}  # first rule that drops it
    kept, dropped = apply_filters(prs, base.model_copy(update={"drop_docs_only": False, "drop_markdown": True,
                                                                "single_file": True}))
    assert [p.number for p in kept] == [5] and dropped == {"touches a markdown file": 2, "more than one file": 2}


def test_earlier_share_keeps_each_repositorys_earliest_prs_by_creation_date():
    prs = [make_pr("o/a", 1, created=day(9)), make_pr("o/a", 2, created=day(3)), make_pr("o/b", 1, created=day(1)),
           make_pr("o/a", 3, created=day(5)), make_pr("o/a", 4, created=None), make_pr("o/a", 5, created=day(1))]
    params = PRQueriesParams(tokenizer=None, per_repo_cap=0, earlier_share=0.5, max_patch_tokens=100)
    kept, dropped = apply_filters(prs, params)
    # o/a: 5 PRs keep ceil(2.5) = 3, the earliest (day 1, 3, 5); undated counts as latest; o/b keeps its one
    assert [p.key for p in kept] == ["o/a#2", "o/b#1", "o/a#3", "o/a#5"]
    assert dropped == {"in the later share of its repository": 2}
    # the share is of everything mined, before the other rules: dropping o/a#5 for its size keeps o/a#1 out
    big = prs[:5] + [make_pr("o/a", 5, created=day(1), patch="@@ -1 +1 @@\n" + "+x\n" * 400)]
    kept, dropped = apply_filters(big, params)
    assert [p.key for p in kept] == ["o/a#2", "o/b#1", "o/a#3"]
    assert dropped == {"in the later share of its repository": 2, "patch over the token budget": 1}
    assert apply_filters(prs, params.model_copy(update={"earlier_share": 1.0}))[0] == prs


def test_per_repo_sample_is_a_seeded_draw_per_repository():
    prs = [make_pr("o/a", n) for n in range(1, 9)] + [make_pr("o/b", n) for n in range(1, 4)] + [make_pr("o/c", 1)]
    params = PRQueriesParams(tokenizer=None, per_repo_cap=0, per_repo_sample=1, sample_seed=42)
    kept, dropped = apply_filters(prs, params)
    assert sorted(p.repo for p in kept) == ["o/a", "o/b", "o/c"] and dropped == {
        "not drawn in the per-repository sample": 9}
    assert [p.key for p in kept] == [p.key for p in prs if p in kept]  # the records' order
    assert apply_filters(prs, params)[0] == kept  # the same seed draws the same PRs
    assert apply_filters(list(reversed(prs)), params)[0] == list(reversed(kept))  # whatever the order
    draws = {tuple(p.key for p in apply_filters(prs, params.model_copy(update={"sample_seed": s}))[0])
             for s in range(8)}
    assert len(draws) > 1  # the seed decides the draw
    kept, dropped = apply_filters(prs, params.model_copy(update={"per_repo_sample": 2, "per_repo_cap": 1}))
    assert len(kept) == 3 and dropped == {"not drawn in the per-repository sample": 7, "per-repo cap reached": 2}


def test_patch_tokens_are_counted_with_the_configured_tokenizer(tmp_path):
    words = make_pr(number=1, patch="@@ -1 +1 @@\n-a\n" + "+a b c d e f g h i j\n" * 6)  # ~150 characters
    tokenizer = word_tokenizer(tmp_path / "models" / "base")
    count, how = patch_token_counter(PRQueriesParams(), tmp_path)  # the default: models/base under the root
    assert how == "tokenizer models/base"
    diff = unified_diff(words.files)
    assert count(diff) > 60 > approx_tokens(diff)  # words and marks, not characters / 4
    params = PRQueriesParams(tokenizer=str(tokenizer), max_patch_tokens=60, per_repo_cap=0)
    assert apply_filters([words], params, count)[1] == {"patch over the token budget": 1}
    chars = params.model_copy(update={"tokenizer": None})
    count, how = patch_token_counter(chars, tmp_path)
    assert how == "characters / 4" and apply_filters([words], chars, count)[0] == [words]


def test_a_missing_tokenizer_names_the_key(tmp_path):
    with pytest.raises(UserError, match=r"pr_queries\.tokenizer: .*models/base holds no tokenizer.*null"):
        patch_token_counter(PRQueriesParams(), tmp_path)


def test_limi_preset_fills_what_the_group_leaves_unset():
    limi = parse_params({"pr_queries": {"preset": "limi"}}).pr_queries
    assert (limi.max_patch_tokens, limi.single_file, limi.drop_markdown, limi.earlier_share, limi.per_repo_sample,
            limi.sample_seed, limi.modify_hint) == (1200, True, True, 0.5, 1, 42, True)
    assert (limi.install.enabled, limi.install.probability, limi.install.seed) == (True, 0.4, 42)
    mine = parse_params({"pr_queries": {"preset": "limi", "max_patch_tokens": 2000, "install": {"seed": 7}}}).pr_queries
    assert mine.max_patch_tokens == 2000 and mine.single_file  # a key beside the preset wins
    assert (mine.install.enabled, mine.install.probability, mine.install.seed) == (True, 0.4, 7)
    assert not parse_params({}).pr_queries.modify_hint  # no preset: the defaults
    full = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())["pr_queries"]
    with pytest.raises(ParamsError, match=r"pr_queries: .*preset: limi has no effect"):
        parse_params({"pr_queries": {**full, "preset": "limi"}})
    with pytest.raises(ParamsError, match=r"pr_queries\.earlier_share"):
        parse_params({"pr_queries": {"earlier_share": 0}})
