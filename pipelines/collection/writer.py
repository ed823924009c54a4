"""``data/trajectories/episodes.jsonl``: finished episodes, appended one at a time, resumable after a kill."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Iterable

from pipelines.core.errors import UserError
from pipelines.core.io import atomic_write_text

log = logging.getLogger(__name__)
EPISODES_FILE = "episodes.jsonl"
RUN_DEPENDENT = ("timings", "collected_at")  # meta fields of earlier versions that made the file run-dependent


class TrajectoryWriter:
    """Append-only JSONL of finished episodes: one write + fsync per record, under a lock.

    On open it recovers from a kill: a torn last line is dropped, and records whose key is not in
    ``keep`` (their query or settings changed) are removed, by an atomic rewrite. :meth:`sort` puts the
    records in a stable order once a run is over, so the file does not depend on which episode finished first.
    """

    def __init__(self, path: Path, keep: set[str]):
        self.path = path
        self.lock = threading.Lock()
        self.done: dict[str, dict[str, Any]] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = path.read_text(encoding="utf-8").split("\n") if path.exists() else []
        kept, dropped, torn, cleaned = [], 0, 0, 0
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if lineno == len(lines):  # the episode in flight when the process died
                    torn += 1
                    continue
                raise UserError(f"{path}:{lineno}: corrupt trajectory record; fix or delete that line") from None
            key = record.get("meta", {}).get("episode_key")
            if key not in keep or key in self.done:
                dropped += 1
                continue
            if _drop_run_dependent(record):
                line, cleaned = _line(record)[:-1], cleaned + 1
            self.done[key] = record
            kept.append(line)
        if dropped or torn or cleaned or (lines and lines[-1] != ""):
            atomic_write_text(path, "".join(f"{line}\n" for line in kept))
            log.info("%s: kept %d episodes, dropped %d stale, %d torn", path, len(kept), dropped, torn)

    def append(self, record: dict[str, Any]) -> None:
        """Append one record whole, or not at all: on a failed or short write (disk full) the file is cut
        back to its previous end, so no torn line is left for later records to follow; the OSError is raised."""
        data = _line(record).encode("utf-8")
        with self.lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                end = os.fstat(fd).st_size
                try:
                    written = 0
                    while written < len(data):  # a short write is followed by the real error (ENOSPC)
                        written += os.write(fd, data[written:])
                    os.fsync(fd)
                except OSError:
                    os.ftruncate(fd, end)
                    raise
            finally:
                os.close(fd)
            self.done[record["meta"]["episode_key"]] = record

    def sort(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        """Rewrite the file (atomically) with its records in the order of ``keys``; returns those records."""
        with self.lock:
            records = [self.done[key] for key in keys if key in self.done]
            text = "".join(_line(r) for r in records)
            current = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
            if text != current:
                atomic_write_text(self.path, text)
        return records


def _drop_run_dependent(record: dict[str, Any]) -> bool:
    """Remove the timings and dates that records of earlier versions carried; True if there were any."""
    meta = record.get("meta") or {}
    found = [key for key in RUN_DEPENDENT if key in meta]
    for key in found:
        del meta[key]
    return bool(found)


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"
