"""Task environments: what a repository declares, read without running it; the environment built once from
the package index, mounted read-only in the real sandbox; a clear error when pip cannot install."""

from __future__ import annotations

import os
import time

import pytest

from pipelines.agent.pyenv import (ENV_MOUNT, EnvError, declared_requirements, ensure_env, env_key,
                                   env_sandbox_options, environment_packages)
from pipelines.agent.sandbox.bwrap import BwrapSandbox
from pipelines.agent.sandbox.plain import NoSandbox
from pipelines.core.schema import PythonEnv


def test_declared_requirements_are_read_from_every_place_and_never_run(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "Demo_Pkg"\ndependencies = ["requests>=2.31", "attrs"]\n'
        '[project.optional-dependencies]\ntest = ["pytest>=8", "hypothesis"]\ndocs = ["sphinx"]\n'
        'all = ["demo-pkg[test]"]\n[dependency-groups]\ndev = ["ruff", {include-group = "test"}]\n')
    (tmp_path / "setup.cfg").write_text("[metadata]\nname = demo-pkg\n[options]\ninstall_requires =\n"
                                        "    click>=8  # the CLI\n[options.extras_require]\ntesting = freezegun\n")
    # setup.py is parsed, not executed: the exit below would stop the test if it ran
    (tmp_path / "setup.py").write_text("import sys\nsys.exit('setup.py was run')\nfrom setuptools import setup\n"
                                       "setup(name='demo-pkg', install_requires=['numpy<3'], "
                                       "tests_require=['pytest-mock'], extras_require=compute())\n")
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements.txt").write_text("# pinned\n-r requirements/base.txt\n-e .\n./local/wheel.whl\n"
                                               "https://example.invalid/x.tar.gz\n--index-url https://x\n"
                                               "six==1.16.0 ; python_version < '4'\n")
    (tmp_path / "requirements" / "base.txt").write_text("idna\n-r ../../outside.txt\n")
    (tmp_path.parent / "outside.txt").write_text("never-read\n")
    found = declared_requirements(tmp_path)
    assert found == ["attrs", "click>=8", "freezegun", "hypothesis", "idna", "numpy<3", "pytest-mock", "pytest>=8",
                     "requests>=2.31", "ruff", 'six==1.16.0; python_version < "4"']
    assert "sphinx" not in found and not any("demo" in r.lower() for r in found)  # no docs extra, not itself
    assert "never-read" not in found and not any(r.startswith(("-", ".", "http")) for r in found)
    # the repository's own pytest range wins over the pin; without one the pin is added
    assert environment_packages(tmp_path, "pytest==9.2.0") == found
    (tmp_path / "bare").mkdir()
    assert environment_packages(tmp_path / "bare", "pytest==9.2.0") == ["pytest==9.2.0"]


def test_bad_declarations_name_the_file(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project\nname = ")
    with pytest.raises(EnvError, match="pyproject.toml: not valid TOML"):
        declared_requirements(tmp_path)


@pytest.mark.needs_bwrap
def test_environment_is_built_once_and_mounted_read_only(task_env, env_cache, tmp_path):
    spec = PythonEnv(packages=["pytest==9.2.0"])
    started = time.monotonic()
    assert ensure_env(spec) == task_env == env_cache / env_key(spec)  # cached: no second build
    assert time.monotonic() - started < 1.0
    assert sorted(p.name for p in env_cache.iterdir()) == [task_env.name, f"{task_env.name}.lock"]
    # nothing in it names the host's cache folder (scripts, bytecode, config), so the agent learns nothing of the host
    host_path = str(env_cache).encode()
    assert not [p for p in task_env.rglob("*") if p.is_file() and not p.is_symlink() and host_path in p.read_bytes()]
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    box = BwrapSandbox(workspace, timeout_s=60, **env_sandbox_options(task_env, "bwrap"))
    result = box.run("command -v python3 pytest; pytest -q -p no:cacheprovider; python3 -c 'import sys; print(sys.prefix)'"
                     f"; touch {ENV_MOUNT}/x; ls {ENV_MOUNT}/bin")
    assert result.output.startswith(f"{ENV_MOUNT}/bin/python3\n{ENV_MOUNT}/bin/pytest\n"), result.output
    assert "1 passed" in result.output and f"\n{ENV_MOUNT}\n" in result.output
    assert "Read-only file system" in result.output and "\npip" not in result.output  # no installer inside
    # without isolation the same environment is used where it lies
    plain = NoSandbox(workspace, timeout_s=60, **env_sandbox_options(task_env, "none"))
    assert "1 passed" in plain.run("python3 -m pytest -q -p no:cacheprovider").output


def test_an_install_that_fails_says_what_and_why_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # no index to install from: pip fails at once, offline
    with pytest.raises(EnvError) as info:
        ensure_env(PythonEnv(packages=["pytest==9.2.0"]), tmp_path / "cache")
    message = str(info.value)
    assert message.startswith("pip could not install pytest==9.2.0 from the package index: ")
    assert "pytest==9.2.0" in message.split(": ", 1)[1]  # pip's own reason names the requirement
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []
