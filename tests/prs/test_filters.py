"""LIMI's filters on mined pull requests."""

import tempfile
from collections import Counter
from datetime import date
from pathlib import Path

from pipelines.prs.config import PRQueriesParams
from pipelines.prs.filters import filter_reason
from pipelines.prs.git import mine_git
from tests.prs.pr_fixtures import repo_with_prs


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
