"""What each DVC stage really depends on: its import closure and the params keys its code reads.

``python -m pipelines.tools.stage_deps`` prints, per stage, the code deps and params ``dvc.yaml``
should declare and the differences; ``--check`` exits 1 on any difference (the test suite runs it);
``--write`` rewrites the ``deps`` and ``params`` of every stage in ``dvc.yaml`` (data deps are kept).

Readings, written down because "depends on" has more than one:

- **Code.** A stage's entry module is the ``-m`` module of its ``cmd``. Its closure is every module of
  this project reachable through ``import`` statements anywhere in a module (top level or inside a
  function: a lazy import still runs), plus each imported module's parent packages' ``__init__.py``.
  Data the code opens from the source tree counts too: a path join in a module (``Path(__file__).parent
  / "templates"``) whose string names a non-module file or folder in its package or a parent package.
  The closure is declared as folders where a folder's every module and data file is in it, else as
  files, so a change to any other file reruns nothing.
- **Params.** A stage reads its own group (``params.yaml: <stage>``); it reads ``llm.roles.<role>``
  for each role its closure asks for (``model_for_role(..., "<role>")`` or ``.roles.<role>``), and
  ``llm.models.<name>`` for each model those roles and its own group's ``model:`` entries name.
  Keys marked ``speed_only`` in their params model (they change how fast, never what comes out;
  tests prove the equality) are not deps. A group with no speed-only key is declared whole. The group
  is named by the entry module (``pipelines.collect`` reads ``collect``, whatever the stage is called).
- **Shards.** A stage with ``matrix: {shard: [...]}`` (``collect_shard``) is one stage per shard; the list
  is ``0..N-1`` for ``N = <group>.shards`` in params.yaml, and a stage depending on the shards' outputs
  (``data/shards/<group>/<i>``, the merge) depends on all N. DVC's matrix takes a literal list, not a
  count, so the list is generated here from params (``--write``) and ``--check`` reports a stale one.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

PACKAGES = ("pipelines",)
ROLE_CALL = "model_for_role"


@dataclass
class StageDeps:
    """What one stage should declare, next to what ``dvc.yaml`` declares."""

    stage: str
    code: list[str]
    params: list[str]
    declared_code: list[str] = field(default_factory=list)
    declared_params: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Human-readable differences, each naming the stage and the path or key."""
        out = []
        for path in sorted(set(self.code) - set(self.declared_code)):
            out.append(f"stage {self.stage}: dvc.yaml misses dep {path} (in its import closure)")
        for path in sorted(set(self.declared_code) - set(self.code)):
            out.append(f"stage {self.stage}: dvc.yaml declares dep {path}, which its import closure does not use")
        for key in sorted(set(self.params) - set(self.declared_params)):
            out.append(f"stage {self.stage}: dvc.yaml misses params key {key} (its code reads it)")
        for key in sorted(set(self.declared_params) - set(self.params)):
            out.append(f"stage {self.stage}: dvc.yaml declares params key {key}, which its code does not read "
                       "(or which is speed-only)")
        return out


def module_file(root: Path, module: str) -> Path | None:
    """The source file of a dotted module name inside ``root``, or None if it is not this project's."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(tree: ast.AST, module: str, is_package: bool) -> Iterable[str]:
    """Dotted names a module's import statements ask for (``from a import b`` yields a.b and a)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join(parts[:keep] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield base
            for alias in node.names:
                yield f"{base}.{alias.name}"


def import_closure(root: Path, entry: str) -> dict[str, Path]:
    """Every project module reachable from ``entry`` (dotted name -> file), parents' ``__init__`` included."""
    seen: dict[str, Path] = {}
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_file(root, name)
        if path is None:
            continue
        seen[name] = path
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        todo.extend(_imported(tree, name, path.name == "__init__.py"))
    return seen


def _package_files(folder: Path) -> set[Path]:
    """A package folder's modules, recursing into sub-packages (folders with ``__init__.py``)."""
    files = set(folder.glob("*.py"))
    for sub in folder.iterdir():
        if sub.is_dir() and (sub / "__init__.py").is_file():
            files |= _package_files(sub)
    return files


def _data_dirs(folder: Path) -> set[Path]:
    """Non-package, non-cache folders directly or indirectly inside a package folder (data it ships)."""
    found: set[Path] = set()
    for sub in folder.iterdir():
        if not sub.is_dir() or sub.name == "__pycache__":
            continue
        found |= _data_dirs(sub) if (sub / "__init__.py").is_file() else {sub}
    return found


def compress(root: Path, files: set[Path], data: set[Path]) -> list[str]:
    """Declare a folder where every module and data folder in it is used, else the files themselves."""
    chosen: set[Path] = set()

    def visit(folder: Path) -> None:
        modules = _package_files(folder)
        datas = _data_dirs(folder)
        loose = {p for p in folder.iterdir() if p.is_file() and p.suffix != ".py" and p.parent == folder}
        if modules and modules <= files and datas <= data and not loose - files:
            chosen.add(folder)
            return
        chosen.update(p for p in files if p.parent == folder)
        chosen.update(p for p in data if p.parent == folder)
        for sub in sorted(folder.iterdir()):
            if sub.is_dir() and (sub / "__init__.py").is_file():
                visit(sub)

    for package in PACKAGES:
        visit(root / package)
    return sorted(p.relative_to(root).as_posix() for p in chosen)


def data_read(module: Path) -> set[Path]:
    """Non-module files and folders in ``module``'s package or a parent package that one of its path
    joins names (``Path(__file__).parents[1] / "builtin"``)."""
    folders = [p for p in module.parents if (p / "__init__.py").is_file()]
    found = set()
    joined = [side for node in ast.walk(ast.parse(module.read_text(encoding="utf-8")))
              if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) for side in (node.left, node.right)]
    for node in joined:  # only path joins (``folder / "name"``): a bare string is no file read
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and re.fullmatch(r"[\w-][\w.-]*", node.value)):
            continue
        for folder in folders:
            candidate = folder / node.value
            if candidate.exists() and candidate.suffix != ".py" and candidate.name != "__pycache__" \
                    and not (candidate / "__init__.py").exists():
                found.add(candidate)
    return found


def code_deps(root: Path, entry: str) -> list[str]:
    """The paths a stage whose command runs ``python -m entry`` must declare."""
    files = set(import_closure(root, entry).values())
    data = {d for f in files for d in data_read(f)}
    return compress(root, files, data)


# ---------------------------------------------------------------- params
def _roles_read(files: Iterable[Path]) -> set[str]:
    roles: set[str] = set()
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name == ROLE_CALL and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
                    roles.add(str(node.args[1].value))
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                  and node.value.attr == "roles"):
                roles.add(node.attr)
    return roles


def _models_named(group: Any) -> set[str]:
    """Model names in a stage's own group: every ``model:`` value in its lists of mappings."""
    names: set[str] = set()
    if isinstance(group, dict):
        for value in group.values():
            for item in value if isinstance(value, list) else []:
                if isinstance(item, dict) and isinstance(item.get("model"), str):
                    names.add(item["model"])
    return names


def _keys(prefix: str, data: Any, speed_only: set[str]) -> list[str]:
    """``prefix`` whole if none of its top-level keys is speed-only, else its other keys one by one."""
    if not isinstance(data, dict) or not speed_only & set(data):
        return [prefix]
    return [f"{prefix}.{k}" for k in data if k not in speed_only]


def params_deps(root: Path, stage: str, entry: str, params: dict[str, Any]) -> list[str]:
    """The dotted params keys a stage reads, per the reading in the module docstring."""
    from pipelines.core.params import speed_only_keys

    closure = import_closure(root, entry)
    keys = _keys(stage, params.get(stage, {}), speed_only_keys(stage)) if stage in params else []
    llm = params.get("llm", {})
    roles = sorted(_roles_read(closure.values()) & set(llm.get("roles", {})))
    keys += [f"llm.roles.{r}" for r in roles]
    models = {llm["roles"][r] for r in roles} | _models_named(params.get(stage))
    for name in sorted(m for m in models if m in llm.get("models", {})):
        spec = llm["models"][name]
        keys += _keys(f"llm.models.{name}", spec, speed_only_keys(f"llm.models.{spec.get('backend')}"))
    return keys


# ---------------------------------------------------------------- dvc.yaml
def _entry(cmd: str) -> str | None:
    match = re.search(r"python3? -m ([\w.]+)", cmd)
    return match.group(1) if match else None


def _is_code(path: str) -> bool:
    return path.split("/")[0] in PACKAGES


def _declared_params(items: list[Any]) -> list[str]:
    out: list[str] = []
    for item in items or []:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):  # {params.yaml: [keys]} form
            for keys in item.values():
                out.extend(keys or [])
    return out


def analyse(root: Path) -> list[StageDeps]:
    """Every stage of ``root/dvc.yaml`` with what it should declare and what it declares."""
    dvc = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8")) or {}
    result = []
    for stage, spec in dvc["stages"].items():
        entry = _entry(spec["cmd"])
        if entry is None:
            continue
        declared = [d for d in spec.get("deps", []) if _is_code(d)]
        group = entry.rsplit(".", 1)[-1]
        result.append(StageDeps(stage, code_deps(root, entry), params_deps(root, group, entry, params),
                                declared, _declared_params(spec.get("params"))))
    return result


SHARD_DEP = re.compile(r"data/shards/(\w+)/(\d+)$")


def shard_count(params: dict[str, Any], group: str) -> int:
    """``<group>.shards`` from params.yaml (1 when absent)."""
    value = (params.get(group) or {}).get("shards", 1)
    return value if isinstance(value, int) and value >= 1 else 1


def shard_layout(spec: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with its shard list (``matrix.shard``) and its deps on shard outputs made ``0..N-1``."""
    entry = _entry(spec.get("cmd", "")) or ""
    out = dict(spec)
    matrix = spec.get("matrix")
    if isinstance(matrix, dict) and "shard" in matrix:
        out["matrix"] = {**matrix, "shard": list(range(shard_count(params, entry.rsplit(".", 1)[-1])))}
    deps = spec.get("deps") or []
    groups = [m.group(1) for d in deps if isinstance(d, str) and (m := SHARD_DEP.match(d))]
    if groups:
        first = next(i for i, d in enumerate(deps) if isinstance(d, str) and SHARD_DEP.match(d))
        rest = [d for d in deps if not (isinstance(d, str) and SHARD_DEP.match(d))]
        made = [f"data/shards/{g}/{i}" for g in dict.fromkeys(groups) for i in range(shard_count(params, g))]
        out["deps"] = rest[:first] + made + rest[first:]
    return out


def shard_problems(root: Path) -> list[str]:
    """Stages whose shard list or shard deps do not match params.yaml's shard counts."""
    dvc = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8")) or {}
    return [f"stage {name}: its shard list or shard deps do not match params.yaml's shard count; "
            f"run `python -m pipelines.tools.stage_deps --write`"
            for name, spec in dvc["stages"].items() if shard_layout(spec, params) != spec]


def write(root: Path, stages: list[StageDeps]) -> None:
    """Rewrite each stage's code deps (data deps kept, after the code) and params in ``dvc.yaml``."""
    path = root / "dvc.yaml"
    text = path.read_text(encoding="utf-8")
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    dvc = yaml.safe_load(text)
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8")) or {}
    for name, spec in dvc["stages"].items():
        dvc["stages"][name] = shard_layout(spec, params)
    for item in stages:
        spec = dvc["stages"][item.stage]
        data = [d for d in spec.get("deps", []) if not _is_code(d)]
        rebuilt = {}
        for key, value in spec.items():
            if key == "deps":
                value = item.code + data
            elif key == "params":
                value = item.params
            rebuilt[key] = value
        if "params" not in rebuilt and item.params:
            rebuilt["params"] = item.params
        dvc["stages"][item.stage] = rebuilt
    body = yaml.safe_dump(dvc, sort_keys=False, width=110)
    path.write_text(header + body, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.tools.stage_deps", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="project root holding dvc.yaml (default: .)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if dvc.yaml differs from the import closures")
    mode.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps and params")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    stages = analyse(root)
    problems = [p for s in stages for p in s.problems()] + shard_problems(root)
    if args.write:
        write(root, stages)
        print(f"rewrote {root / 'dvc.yaml'}: {len(problems)} difference(s) fixed")
        return 0
    for item in stages:
        print(f"{item.stage}:\n  code:   {', '.join(item.code)}\n  params: {', '.join(item.params)}")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
