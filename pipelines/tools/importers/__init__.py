"""Trajectories from other agent frameworks, in the trajectory schema (``limi import``).

    records = import_paths([Path("runs/swe-agent")], "swe-agent", resolved=Path("results.json"))

Formats (each reader's module says how its actions map to this project's tools and how it reads
verification):

- ``mini-swe-agent``: ``*.traj.json`` (:mod:`.minisweagent`)
- ``swe-agent``: ``*.traj`` (:mod:`.sweagent`)
- ``openhands``: a JSON list of events, or evaluation rows with ``history`` (:mod:`.openhands`)
- ``limi``: JSONL rows of ``messages``/``tools`` (the released LIMI/SII CLI data, and this project's own
  records) (:mod:`.chat`)
- ``sharegpt``: LLaMA-Factory's ShareGPT with tools, as ``limi export sharegpt`` writes it (:mod:`.chat`)

Each record's meta carries its provenance (``source: import:<format>``, ``imported``: file, index, model,
exit status, verification; see :func:`.common.make_record`). Only an explicit verdict counts as
verification: a resolved/pass flag in the source, or an evaluation report (``--resolved``: SWE-bench's
``resolved_ids``/``unresolved_ids``, or instance ids mapped to ``{"resolved": bool}``), matched on the task
id. An agent's own claim that it finished (``exit_status: submitted``, ``task_completed``) is not one.
Unverified records have ``passed: false``, so curate's ``verified`` step keeps them out unless
``curate.admit_unverified`` is set; verified ones go through the funnel like collected episodes.

Bad input is a :class:`~pipelines.core.errors.UserError` naming the file and the line (JSONL), the index
(an item of a JSON list: ``FILE[INDEX]``), the message or event.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from pipelines.core.errors import UserError
from pipelines.core.paths import display_path
from pipelines.core.schema import read_jsonl
from pipelines.core.tracking import scrub, secret_values
from pipelines.tools.importers import chat, minisweagent, openhands, sweagent
from pipelines.tools.importers.common import ResolvedReport, Source

Converter = Callable[[Source, "ResolvedReport | None"], dict[str, Any]]
CONVERTERS: dict[str, Converter] = {
    "mini-swe-agent": minisweagent.convert,
    "swe-agent": sweagent.convert,
    "openhands": openhands.convert,
    "limi": chat.convert_limi,
    "sharegpt": chat.convert_sharegpt,
}
FORMATS = tuple(CONVERTERS)  # pipelines.tools.cli.IMPORT_FORMATS names them too
# What a folder given as PATH is searched for (recursively), per format; without a format, the files
# whose names say their format.
FOLDER_PATTERNS = {"mini-swe-agent": ("*.traj.json",), "swe-agent": ("*.traj",), "openhands": ("*.json", "*.jsonl"),
                   "limi": ("*.jsonl",), "sharegpt": ("*.json", "*.jsonl")}
AUTO_PATTERNS = ("*.traj.json", "*.traj")
# Files beside trajectories that are not trajectories: LLaMA-Factory's dataset list, OpenHands' run settings.
NOT_TRAJECTORIES = frozenset({"dataset_info.json", "metadata.json"})


def load_json(path: Path) -> Any:
    """A whole JSON file; UserError naming the file (and line) when it is missing or not JSON."""
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{shown}: file not found") from None
    except UnicodeDecodeError:
        raise UserError(f"{shown}: not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{shown}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None


def classify(value: Any) -> str | None:
    """The format a parsed file (or its first JSONL row) has, or None when it is none of them."""
    if isinstance(value, list):
        if not value:
            return None
        if openhands.is_event(value[0]):
            return "openhands"
        value = value[0]  # a JSON list of rows
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("trajectory"), list):
        return "swe-agent"
    if isinstance(value.get("history"), list):
        return "openhands"
    if isinstance(value.get("conversations"), list):
        return "sharegpt"
    if isinstance(value.get("messages"), list):
        return "mini-swe-agent" if "trajectory_format" in value or isinstance(value.get("info"), dict) else "limi"
    return None


def detect_format(path: Path) -> str:
    """The format of one file: by its name (``.traj.json``, ``.traj``), else by its content's shape."""
    if path.name.endswith(".traj.json"):
        return "mini-swe-agent"
    if path.suffix == ".traj":
        return "swe-agent"
    first = next((row for _, row in read_jsonl(path)), None) if path.suffix == ".jsonl" else load_json(path)
    found = classify(first)
    if found is None:
        raise UserError(f"{display_path(path)}: cannot tell which format this is; name it: "
                        f"limi import FORMAT PATH (FORMAT: {', '.join(FORMATS)})")
    return found


def expand(paths: Iterable[Path], fmt: str | None) -> list[Path]:
    """The files to read: files as given, folders searched for the format's files; each file once."""
    out: dict[Path, None] = {}
    for path in paths:
        if path.is_dir():
            patterns = FOLDER_PATTERNS[fmt] if fmt else AUTO_PATTERNS
            found = sorted({f for pattern in patterns for f in path.rglob(pattern)
                            if f.is_file() and f.name not in NOT_TRAJECTORIES})
            if not found:
                hint = "" if fmt else " (without FORMAT a folder is searched for these; name the format or the files)"
                raise UserError(f"{display_path(path)}: no {' or '.join(patterns)} files in this folder{hint}")
            out.update(dict.fromkeys(found))
        elif path.is_file():
            out[path] = None
        else:
            raise UserError(f"{display_path(path)}: no such file or folder")
    return list(out)


def sources(path: Path, fmt: str) -> Iterator[Source]:
    """The trajectories in one file: a JSONL file's rows, a JSON list's items, or the file's one object (an
    OpenHands list of events is one trajectory)."""
    shown = display_path(path)
    if path.suffix == ".jsonl":
        for k, (line, data) in enumerate(read_jsonl(path)):
            yield Source(path, shown, k, data, line=line)
        return
    data = load_json(path)
    one = (not isinstance(data, list) or fmt in ("mini-swe-agent", "swe-agent")
           or (fmt == "openhands" and (not data or openhands.is_event(data[0]))))
    if one:
        yield Source(path, shown, 0, data, single=True)
        return
    for k, item in enumerate(data):
        yield Source(path, shown, k, item)


def load_report(path: Path) -> ResolvedReport:
    """An evaluation report: SWE-bench's (``resolved_ids`` true; ``unresolved_ids`` and ``empty_patch_ids``
    false; instances it could not evaluate stay unverified) or ``{instance_id: {"resolved": bool}}``."""
    data = load_json(path)
    shown = display_path(path)
    if isinstance(data, dict) and isinstance(data.get("resolved_ids"), list):
        resolved: dict[str, bool] = {}
        for key, value in (("unresolved_ids", False), ("empty_patch_ids", False), ("resolved_ids", True)):
            ids = data.get(key) or []
            if not isinstance(ids, list):
                raise UserError(f"{shown}: {key} must be a list of instance ids")
            resolved.update((str(i), value) for i in ids)
    elif (isinstance(data, dict) and data
          and all(isinstance(v, dict) and isinstance(v.get("resolved"), bool) for v in data.values())):
        resolved = {str(k): v["resolved"] for k, v in data.items()}
    else:
        raise UserError(f"{shown}: not an evaluation report: expected SWE-bench's 'resolved_ids' and "
                        "'unresolved_ids' lists, or instance ids mapped to {\"resolved\": true|false}")
    return ResolvedReport(shown, resolved)


def import_paths(paths: Iterable[Path], fmt: str | None = None,
                 resolved: Path | None = None) -> list[tuple[str, dict[str, Any]]]:
    """``(format, record)`` for every trajectory in ``paths`` (files or folders), in order; ``fmt`` None
    detects each file's format. ``resolved``: an evaluation report whose verdicts win over the sources'."""
    if fmt is not None and fmt not in CONVERTERS:
        raise UserError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    report = load_report(resolved) if resolved is not None else None
    secrets = secret_values()
    out = []
    for path in expand(paths, fmt):
        use = fmt or detect_format(path)
        out.extend((use, scrubbed(CONVERTERS[use](src, report), secrets)) for src in sources(path, use))
    return out


def scrubbed(value: Any, secrets: list[str]) -> Any:
    """``value`` with this machine's secret values (environment variables named like KEY, TOKEN ...) replaced
    by ``***`` in every string: a trajectory from elsewhere may hold a key that is also set here."""
    if isinstance(value, str):
        return scrub(value, secrets) if secrets else value
    if isinstance(value, dict):
        return {k: scrubbed(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrubbed(v, secrets) for v in value]
    return value
