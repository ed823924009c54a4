"""Loading eval suites by name."""

from __future__ import annotations

import pytest

from pipelines.core.errors import UserError
from pipelines.evaluation.suites.builtin import load_builtin
from pipelines.evaluation.tasks import load_suite

BUILTIN = load_builtin()


def test_load_suite_dispatch(tmp_path):
    assert [t.id for t in load_suite("builtin")] == [t.id for t in BUILTIN]
    with pytest.raises(UserError, match="unknown eval suite 'swebench'"):
        load_suite("swebench")
    with pytest.raises(UserError, match="eval suite 'humaneval'"):
        load_suite("humaneval", limt=3)
    with pytest.raises(UserError, match="not found"):
        load_suite("agencybench", directory=tmp_path / "nowhere")
