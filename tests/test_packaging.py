"""The built wheel ships every file the stages need: installed alone, it runs a stage and loads the builtin suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_in_a_fresh_venv_runs_a_stage_and_loads_the_builtin_suite_from_a_checkout(tmp_path):
    # Build from a copy, so the build leaves nothing (build/, *.egg-info) in the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("pipelines", "flows"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(dist), str(src)], check=True, capture_output=True, text=True, timeout=300)
    wheel = next(dist.glob("limi_pipelines-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "pipelines/templates/chatml_tools.jinja" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "limi = pipelines.tools.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()  # the console script
    # hidden task data (reference solutions, expected outputs) is data of a checkout, never in the package
    assert not any("/solution/" in n or n.endswith("/task.json") for n in names), names

    # A fresh venv that borrows the dependencies (not the project) from the test's environment.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, text=True, timeout=300)

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LIMI_ROOT")}
    help_run = subprocess.run([py, "-m", "pipelines.eval", "--help"], cwd=work, env=env, capture_output=True,
                              text=True, timeout=300)
    assert help_run.returncode == 0, help_run.stderr[-2000:]
    assert "usage" in help_run.stdout.lower()
    probe = ("import pipelines; from pipelines.evaluation.tasks import load_suite; "
             "tasks = load_suite('builtin'); print(pipelines.__file__); print(len(tasks))")
    loaded = subprocess.run([py, "-c", probe], cwd=work, env={**env, "LIMI_ROOT": str(REPO)}, capture_output=True,
                            text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    location, count = loaded.stdout.split()
    assert Path(location).is_relative_to(site), location  # the wheel's copy, not the checkout
    assert int(count) >= 10
