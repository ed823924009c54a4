"""Python environments for a task's tests: a virtual environment with a repository's declared dependencies.

    packages = environment_packages(workspace, pytest_spec="pytest==9.2.0")
    path = ensure_env(PythonEnv(packages=packages))    # built once per (Python, packages), then reused
    sandbox = make_sandbox("bwrap", workspace, **env_sandbox_options(path, "bwrap"))
    sandbox.run("python3 -m pytest -q tests")          # the environment's python3 comes first on PATH

**What is declared** (:func:`declared_requirements`), read and never executed:

- ``pyproject.toml``: ``[project] dependencies``, and the ``test``, ``tests``, ``testing`` and ``dev``
  entries of ``[project.optional-dependencies]`` and ``[dependency-groups]``;
- ``setup.cfg``: ``[options] install_requires`` and the same ``[options.extras_require]`` entries;
- ``setup.py``: ``install_requires`` and ``tests_require`` when they are literal lists (read with ``ast``);
- requirement files at the root (``requirements.txt``, ``requirements-dev.txt``, ``requirements-test.txt``,
  ``requirements_dev.txt``, ``requirements_test.txt``, ``test-requirements.txt``, ``dev-requirements.txt``)
  and ``requirements/{base,test,tests,dev}.txt``: one specifier a line; ``-r`` includes inside the repository
  are followed, other pip options, local paths and URLs are left out.

The project's own name is left out (the code under test is the workspace's, imported from the working
directory, never an installed copy), and :func:`environment_packages` adds the pinned pytest unless the
repository names pytest itself.

**How it is built** (:func:`ensure_env`): ``/usr/bin/python3 -m venv --without-pip`` (the sandbox mounts
``/usr``, so the environment's ``python3`` link works inside it), then this process's pip installs the
packages into it from the package index (``pip --python``); an install that fails raises
:class:`EnvError` with pip's reason. The build happens in a temporary folder beside its cache entry and is
renamed into place under a file lock, so parallel episodes and stages build it once. Scripts start through
``/bin/sh`` and find their interpreter next to themselves, bytecode names the mount path, and nothing in
the environment names the host's cache folder, so it works mounted read-only at :data:`ENV_MOUNT`.
The cache is ``$LIMI_ENV_CACHE``, else ``$XDG_CACHE_HOME/limi-pipelines/envs`` (``~/.cache/...``).
"""

from __future__ import annotations

import ast
import configparser
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pipelines.agent.sandbox.base import SEARCH_PATH
from pipelines.core.errors import UserError
from pipelines.core.schema import PythonEnv

SYSTEM_PYTHON = "/usr/bin/python3"
ENV_MOUNT = "/opt/venv"  # where the sandbox shows the environment (a neutral path, read-only)
LAYOUT = 1  # bump when the way environments are built changes: older cache entries are then not reused
EXTRAS = ("test", "tests", "testing", "dev")
REQUIREMENT_FILES = ("requirements.txt", "requirements-dev.txt", "requirements-test.txt", "requirements_dev.txt",
                     "requirements_test.txt", "test-requirements.txt", "dev-requirements.txt",
                     "requirements/base.txt", "requirements/test.txt", "requirements/tests.txt",
                     "requirements/dev.txt")
PIP_TIMEOUT_S = 900
MARKER = ".limi-env.json"  # written last: an entry without it is an interrupted build
# a script that finds its interpreter next to itself, wherever the environment is mounted (sh, then Python)
SCRIPT_HEAD = "#!/bin/sh\n'''exec' \"$(dirname -- \"$0\")/python3\" \"$0\" \"$@\"\n' '''\n"


class EnvError(UserError):
    """A task's Python environment cannot be built (no system Python, or pip cannot install a package)."""


def env_cache_dir() -> Path:
    """Where environments are cached: ``$LIMI_ENV_CACHE``, else ``$XDG_CACHE_HOME/limi-pipelines/envs``."""
    if os.environ.get("LIMI_ENV_CACHE"):
        return Path(os.environ["LIMI_ENV_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "limi-pipelines" / "envs"


# ------------------------------------------------------------------ what a repository declares
def _requirement(text: str) -> Any | None:
    """``text`` parsed as a requirement specifier, or None (a path, a URL, a pip option, garbage)."""
    from packaging.requirements import InvalidRequirement, Requirement

    text = text.strip()
    if not text or text.startswith(("-", ".", "/")) or "://" in text:
        return None
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject(root: Path) -> tuple[list[str], str | None]:
    path = root / "pyproject.toml"
    if not path.is_file():
        return [], None
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise EnvError(f"{path}: reading it needs Python 3.11+ (tomllib) or the tomli package") from None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8", errors="replace"))
    except tomllib.TOMLDecodeError as exc:
        raise EnvError(f"{path}: not valid TOML ({exc})") from None
    project = data.get("project") if isinstance(data.get("project"), dict) else {}
    found = list(project.get("dependencies") or [])
    for table in (project.get("optional-dependencies"), data.get("dependency-groups")):
        if isinstance(table, dict):
            for extra in EXTRAS:
                found += [item for item in table.get(extra) or [] if isinstance(item, str)]
    name = project.get("name") if isinstance(project.get("name"), str) else None
    return [item for item in found if isinstance(item, str)], name


def _setup_cfg(root: Path) -> tuple[list[str], str | None]:
    path = root / "setup.cfg"
    if not path.is_file():
        return [], None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8", errors="replace"))
    except configparser.Error as exc:
        raise EnvError(f"{path}: cannot be read ({str(exc).splitlines()[0]})") from None
    lines = parser.get("options", "install_requires", fallback="").splitlines()
    for extra in EXTRAS:
        lines += parser.get("options.extras_require", extra, fallback="").splitlines()
    return [line.split("#")[0].strip() for line in lines], parser.get("metadata", "name", fallback=None)


def _setup_py(root: Path) -> tuple[list[str], str | None]:
    """``install_requires``/``tests_require`` and ``name`` of a ``setup(...)`` call, when they are literals."""
    path = root / "setup.py"
    if not path.is_file():
        return [], None
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except SyntaxError:
        return [], None
    found: list[str] = []
    name = None
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            try:
                value = ast.literal_eval(keyword.value)
            except ValueError:
                continue
            if keyword.arg in ("install_requires", "tests_require") and isinstance(value, (list, tuple)):
                found += [item for item in value if isinstance(item, str)]
            elif keyword.arg == "name" and isinstance(value, str):
                name = value
    return found, name


def _requirement_file(root: Path, relative: str, seen: set[str]) -> list[str]:
    """The specifiers of one requirement file, ``-r`` includes inside ``root`` followed (each file once)."""
    path = (root / relative).resolve()
    if relative in seen or not path.is_file() or not path.is_relative_to(root.resolve()):
        return []
    seen.add(relative)
    found = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.split(" #")[0].strip()
        include = re.match(r"^(?:-r|--requirement)[\s=]+(\S+)$", line)
        if include:
            target = (path.parent / include.group(1)).resolve()
            if target.is_relative_to(root.resolve()):
                found += _requirement_file(root, target.relative_to(root.resolve()).as_posix(), seen)
        elif not line.startswith("#"):
            found.append(line)
    return found


def declared_requirements(root: Path) -> list[str]:
    """The requirement specifiers the repository at ``root`` declares (see the module docstring), sorted,
    each once, the project itself left out."""
    root = Path(root)
    found: list[str] = []
    names: set[str] = set()
    for reader in (_pyproject, _setup_cfg, _setup_py):
        items, name = reader(root)
        found += items
        if name:
            names.add(_canonical(name))
    seen: set[str] = set()
    for relative in REQUIREMENT_FILES:
        found += _requirement_file(root, relative, seen)
    out = set()
    for item in found:
        requirement = _requirement(item)
        if requirement is not None and _canonical(requirement.name) not in names:
            out.add(str(requirement))
    return sorted(out)


def environment_packages(root: Path, pytest_spec: str) -> list[str]:
    """What a task's environment installs: the declared requirements, and ``pytest_spec`` unless the
    repository names pytest itself (its own range then wins)."""
    declared = declared_requirements(root)
    if any(_canonical(_requirement(item).name) == "pytest" for item in declared):
        return declared
    return sorted({*declared, pytest_spec})


# ------------------------------------------------------------------ building and caching
@functools.lru_cache(maxsize=None)
def system_python_version() -> str:
    """The version of :data:`SYSTEM_PYTHON` (``3.11.2``); EnvError when there is none."""
    if not Path(SYSTEM_PYTHON).exists():
        raise EnvError(f"{SYSTEM_PYTHON} is missing: a task's Python environment is built from the system's "
                       "Python, which the sandbox mounts (install it: sudo apt-get install python3)")
    proc = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise EnvError(f"{SYSTEM_PYTHON} does not run: {proc.stderr.strip()[-300:]}")
    return proc.stdout.strip()


def env_key(spec: PythonEnv) -> str:
    """The cache entry's name: the system Python's version and a hash of the packages and the layout."""
    version = system_python_version()
    digest = hashlib.sha256(json.dumps({"python": version, "packages": sorted(spec.packages), "layout": LAYOUT},
                                       sort_keys=True).encode()).hexdigest()[:16]
    return f"py{version}-{digest}"


def ensure_env(spec: PythonEnv, cache_dir: Path | None = None) -> Path:
    """The folder of ``spec``'s environment in the cache, built first when it is not there yet.

    Safe to call from many threads and processes at once: one builds, the others wait and reuse it.
    Raises EnvError (with pip's reason) when the environment cannot be built.
    """
    cache = Path(cache_dir) if cache_dir is not None else env_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    key = env_key(spec)
    final = cache / key
    with open(cache / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / MARKER).is_file():
            return final
        if final.exists():  # an interrupted build renamed without its marker cannot happen; a stray copy can
            shutil.rmtree(final)
        build = Path(tempfile.mkdtemp(prefix=f"{key}.partial-", dir=cache))
        try:
            _build(spec, build)
            (build / MARKER).write_text(json.dumps({"packages": sorted(spec.packages),
                                                    "python": system_python_version(), "layout": LAYOUT}) + "\n")
            os.rename(build, final)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
    return final


def _build(spec: PythonEnv, target: Path) -> None:
    """Create the environment in ``target`` (an empty folder) and install the packages."""
    system_python_version()
    venv = subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", "--clear", str(target)],
                          capture_output=True, text=True, timeout=300)
    if venv.returncode != 0:
        raise EnvError(f"{SYSTEM_PYTHON} -m venv failed: {_last_line(venv.stderr)} (Debian: sudo apt-get install "
                       "python3-venv)")
    command = [sys.executable, "-m", "pip", "--python", str(target / "bin" / "python3"), "install",
               "--disable-pip-version-check", "--no-input", "--no-compile", "--quiet", *sorted(spec.packages)]
    env = {**os.environ, "PIP_NO_INPUT": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        pip = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        raise EnvError(f"pip did not finish installing {', '.join(spec.packages)} in {PIP_TIMEOUT_S} s") from None
    if pip.returncode != 0:
        raise EnvError(f"pip could not install {', '.join(sorted(spec.packages))} from the package index: "
                       f"{_pip_reason(pip.stderr or pip.stdout)}")
    _relocate(target)


def _relocate(target: Path) -> None:
    """Make the environment work at :data:`ENV_MOUNT` and name no host path: scripts find their
    interpreter beside themselves, activation scripts (which hard-code the path) go, bytecode is compiled
    with the mount path as its file names."""
    built = str(target)
    for path in (target / "bin").iterdir():
        if path.is_symlink() or not path.is_file():
            continue
        if path.name.lower().startswith("activate"):
            path.unlink()
            continue
        data = path.read_bytes()
        first, newline, rest = data.partition(b"\n")
        if first.startswith(b"#!") and built.encode() in first:
            path.write_bytes(SCRIPT_HEAD.encode() + rest)
    cfg = target / "pyvenv.cfg"
    cfg.write_text("".join(line for line in cfg.read_text().splitlines(True) if not line.startswith("command")))
    lib = target / "lib"
    compiled = subprocess.run([SYSTEM_PYTHON, "-m", "compileall", "-q", "-j", "0", "-d", f"{ENV_MOUNT}/lib", str(lib)],
                              capture_output=True, text=True, timeout=600)
    if compiled.returncode not in (0, 1):  # 1: a file that does not compile (a test fixture); the rest still did
        raise EnvError(f"compiling the environment's bytecode failed: {_last_line(compiled.stderr)}")


def _pip_reason(text: str) -> str:
    """pip's own error lines, cut short."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("WARNING")]
    errors = [line for line in lines if line.startswith("ERROR")] or lines
    return " | ".join(errors[-3:])[-600:] or "no output"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][-300:] if lines else "no output"


def env_sandbox_options(env_path: Path, kind: str) -> dict[str, Any]:
    """The sandbox options that put the environment at ``env_path`` first on ``PATH``: mounted read-only at
    :data:`ENV_MOUNT` by bwrap; used in place without isolation (``kind: none``)."""
    if kind == "bwrap":
        return {"ro_binds": {ENV_MOUNT: Path(env_path)}, "env": {"PATH": f"{ENV_MOUNT}/bin:{SEARCH_PATH}"}}
    return {"env": {"PATH": f"{Path(env_path)}/bin:{SEARCH_PATH}"}}
