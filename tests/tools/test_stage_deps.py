"""dvc.yaml's deps and params equal each stage's import closure and the params keys its code reads."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from pipelines.tools import stage_deps
from pipelines.tools.stage_deps import analyse, code_deps, import_closure, params_deps

REPO = Path(__file__).resolve().parents[2]


def test_dvc_yaml_declares_every_stage_s_import_closure_and_params():
    problems = [p for stage in analyse(REPO) for p in stage.problems()]
    assert not problems, "dvc.yaml is out of date; run `python -m pipelines.tools.stage_deps --write`:\n" + \
        "\n".join(problems)


def _project_copy(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    shutil.copytree(REPO / "pipelines", root / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, root / name)
    return root


def test_a_removed_dep_line_is_named_with_its_stage(tmp_path):
    root = _project_copy(tmp_path)
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())
    removed = next(d for d in dvc["stages"]["collect"]["deps"] if d.startswith("pipelines/llm"))
    lines = (root / "dvc.yaml").read_text().splitlines(keepends=True)
    collect_at = lines.index("  collect:\n")
    drop = next(i for i in range(collect_at, len(lines)) if lines[i].strip() == f"- {removed}")
    (root / "dvc.yaml").write_text("".join(lines[:drop] + lines[drop + 1:]))
    problems = [p for stage in analyse(root) for p in stage.problems()]
    assert problems == [f"stage collect: dvc.yaml misses dep {removed} (in its import closure)"]
    assert stage_deps.main(["--root", str(root), "--check"]) == 1
    assert stage_deps.main(["--root", str(root), "--write"]) == 0
    assert [p for stage in analyse(root) for p in stage.problems()] == []


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_closure_follows_lazy_and_relative_imports_and_declares_whole_folders_only_when_all_used(tmp_path):
    # Hand-built package: entry -> lib.a (top level), lib.b (inside a function, relative from lib.a);
    # lib.c is never imported, so lib/ must be declared file by file; util/ is used whole.
    _write(tmp_path, {
        "pipelines/__init__.py": "",
        "pipelines/stage.py": "import pipelines.lib.a\nfrom pipelines.util import x\n",
        "pipelines/lib/__init__.py": "",
        "pipelines/lib/a.py": "def f():\n    from . import b\n",
        "pipelines/lib/b.py": "import os\n",
        "pipelines/lib/c.py": "",
        "pipelines/util/__init__.py": "",
        "pipelines/util/x.py": "from pathlib import Path\nT = Path(__file__).parent / 'tables'\n",
        "pipelines/util/tables/one.csv": "a\n",
    })
    assert set(import_closure(tmp_path, "pipelines.stage")) == {
        "pipelines", "pipelines.stage", "pipelines.lib", "pipelines.lib.a", "pipelines.lib.b",
        "pipelines.util", "pipelines.util.x"}
    assert code_deps(tmp_path, "pipelines.stage") == [
        "pipelines/__init__.py", "pipelines/lib/__init__.py", "pipelines/lib/a.py", "pipelines/lib/b.py",
        "pipelines/stage.py", "pipelines/util"]
    # the folder's data is part of the folder only because x.py reads it: without that it is listed apart
    _write(tmp_path, {"pipelines/util/x.py": ""})
    assert code_deps(tmp_path, "pipelines.stage")[-2:] == ["pipelines/util/__init__.py", "pipelines/util/x.py"]


def test_params_are_the_stage_group_roles_and_named_models_less_speed_only_keys(tmp_path):
    _write(tmp_path, {
        "pipelines/__init__.py": "",
        "pipelines/collect.py": "def run(p):\n    return model_for_role(p.llm, 'judge'), p.llm.roles.critic\n",
    })
    params = {
        "collect": {"teachers": [{"model": "big"}, {"model": "replay"}], "rounds": 3},
        "llm": {"models": {"small": {"backend": "local", "path": "m", "max_batch": 8, "kv_cache_mb": 1},
                           "big": {"backend": "openai", "model": "x"},
                           "unused": {"backend": "openai", "model": "y"}},
                "roles": {"judge": "small", "critic": "big", "teacher": "unused"}},
    }
    assert params_deps(tmp_path, "collect", "pipelines.collect", params) == [
        "collect", "llm.roles.critic", "llm.roles.judge", "llm.models.big", "llm.models.small.backend",
        "llm.models.small.path"]
