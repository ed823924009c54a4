"""Trajectory datasets from anywhere: a JSONL file, a folder of Parquet/Arrow/JSONL files, a Hugging Face id.

Curate (``--in``) and sft (``--data``) read their records through :func:`read_records`, so both see the
same messages and tools, and so the same tokens, whatever the file format.

- **JSONL** lines are the records exactly as written.
- **Parquet** and **Arrow** files (``*.parquet``; ``*.arrow`` as ``datasets.save_to_disk`` writes it) are
  read with pyarrow, one record per row; a **Hugging Face dataset id** (``owner/name``, ``hf:owner/name``,
  ``owner/name:split``; split ``train`` by default) is loaded with ``datasets`` from the hub or its cache.
  Both are tables, and a table has one struct type per column: a list of objects gets the union of every
  object's keys, missing ones null, so a ``run_shell_command`` call's ``arguments`` would come back with the
  ``file_path: null`` of a ``write_file`` call elsewhere, and the chat template would render other text. Each
  row is therefore restored (:func:`restore_row`): null values are dropped from messages, tools and meta, and
  ``arguments`` (and ``tools``) given as JSON strings, as ``limi export hub`` writes them, are parsed back into
  objects. What a table cannot give back: an argument that really was ``null`` (dropped as if Arrow had
  added it) and a key order that differs between rows of one column (a struct has one order, the first
  seen); write arguments as JSON strings to keep both.
- Other columns: ``meta`` is the record's meta; ``task_id``, ``episode_key``, ``source``, ``domain``,
  ``category`` and ``teacher`` columns (``limi export hub`` writes them) go into meta when not empty; the
  rest are not part of a trajectory and are left out.

A folder is read file by file in name order (``*.jsonl``, ``*.parquet``, ``*.arrow``; for an Arrow folder of
``datasets.save_to_disk``, its ``data-*.arrow`` files). Each record comes with where it was read: ``FILE:LINE``
for JSONL, ``FILE:ROW`` (1-based) for tables, ``hf:ID:ROW`` for the hub.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from pipelines.core.errors import UserError
from pipelines.core.schema import read_jsonl

TABLE_SUFFIXES = (".parquet", ".arrow")
SUFFIXES = (".jsonl", *TABLE_SUFFIXES)
META_COLUMNS = ("task_id", "episode_key", "source", "domain", "category", "teacher")
#: ``owner/name`` with an optional ``hf:`` prefix and ``:split``; a path that exists is always a path.
HUB_ID = re.compile(r"^(?:hf:)?(?P<id>[A-Za-z0-9][\w.-]*/[\w.-]+)(?::(?P<split>[\w.-]+))?$")


@dataclass(frozen=True)
class DataSource:
    """One thing to read records from: a local file, or a Hugging Face dataset (``hub_id`` and ``split``)."""

    path: Path | None = None
    hub_id: str | None = None
    split: str = "train"

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else f"hf:{self.hub_id}" + (
            f":{self.split}" if self.split != "train" else "")


def resolve_sources(given: Iterable[str | Path], root: Path) -> list[DataSource]:
    """The sources of ``--in``/``--data`` values, in order: a folder's data files sorted by name, a file as it
    is, an ``owner/name`` that is no local path as a Hugging Face id. Relative paths are from ``root``.

    A file or folder that does not exist (and is not a hub id) is still returned: reading it names it."""
    sources: list[DataSource] = []
    for value in given:
        text = str(value)
        path = Path(text) if Path(text).is_absolute() else root / text
        hub = HUB_ID.match(text)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in SUFFIXES)
            sources += [DataSource(path=p) for p in files]
        elif path.exists() or not hub or (Path(text).suffix in (*SUFFIXES, ".json") and not text.startswith("hf:")):
            sources.append(DataSource(path=path))
        else:
            sources.append(DataSource(hub_id=hub.group("id"), split=hub.group("split") or "train"))
    return sources


def read_records(source: DataSource | Path | str) -> Iterator[tuple[str, int, Any]]:
    """Yield ``(name, line_or_row, record)`` for every record of ``source`` (rows 1-based). A line that is not
    JSON, an unreadable table or an unreachable hub raises UserError naming the file or the id."""
    if not isinstance(source, DataSource):
        source = DataSource(path=Path(source))
    if source.hub_id is not None:
        for i, row in enumerate(_hub_rows(source)):
            yield source.name, i + 1, restore_row(row)
        return
    path = source.path
    assert path is not None
    if path.suffix in TABLE_SUFFIXES:
        for i, row in enumerate(_table_rows(path)):
            yield str(path), i + 1, restore_row(row)
        return
    for lineno, record in read_jsonl(path):
        yield str(path), lineno, record


def digest(sources: Iterable[DataSource]) -> str:
    """A digest of what ``sources`` hold: local files by their bytes, hub datasets by their restored records."""
    h = hashlib.sha256()
    for source in sources:
        h.update(source.name.encode() + b"\0")
        if source.path is not None and source.path.is_file():
            h.update(source.path.read_bytes())
        else:
            for _, _, record in read_records(source):
                h.update(json.dumps(record, sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()


def _table_rows(path: Path) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.exists():
        raise UserError(f"{path}: file not found")
    try:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
        else:
            with pa.memory_map(str(path)) as source:
                try:
                    table = pa.ipc.open_file(source).read_all()
                except pa.ArrowInvalid:  # datasets writes the streaming format
                    source.seek(0)
                    table = pa.ipc.open_stream(source).read_all()
    except (pa.ArrowException, OSError) as exc:
        raise UserError(f"{path}: not a readable {path.suffix[1:]} table ({str(exc).splitlines()[0]})") from None
    return table.to_pylist()


def _hub_rows(source: DataSource) -> Iterator[dict[str, Any]]:
    try:
        import datasets

        data = datasets.load_dataset(source.hub_id, split=source.split)
    except Exception as exc:  # noqa: BLE001 - offline, unknown id, no such split: all one answer to the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{source.hub_id}: not a local file or folder, and the Hugging Face dataset "
                        f"{source.hub_id!r} (split {source.split}) could not be loaded: {first}") from None
    yield from data


def drop_nulls(value: Any) -> Any:
    """``value`` without the null entries of its objects, at every depth (lists keep their length)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def restore_row(row: Any) -> Any:
    """A table row back into a trajectory record: nulls Arrow filled in dropped, JSON-string ``arguments`` and
    ``tools`` parsed, meta columns gathered into ``meta``. A row that is not an object is returned as it is."""
    if not isinstance(row, dict):
        return row
    record: dict[str, Any] = {}
    messages = drop_nulls(row.get("messages"))
    if isinstance(messages, list):
        for msg in messages:
            for call in (msg.get("tool_calls") or []) if isinstance(msg, dict) else []:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    fn["arguments"] = _parsed(fn["arguments"])
    record["messages"] = messages
    tools = row.get("tools")
    if isinstance(tools, str):
        tools = _parsed(tools) if tools.strip() else []
    if tools is not None:
        record["tools"] = drop_nulls(tools)
    meta = drop_nulls(row.get("meta")) if isinstance(row.get("meta"), dict) else {}
    for name in META_COLUMNS:
        if row.get(name) not in (None, "") and name not in meta:
            meta[name] = row[name]
    if meta:
        record["meta"] = meta
    return record


def _parsed(text: str) -> Any:
    """JSON text as its value; text that is not JSON stays text (the schema check then names it)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
