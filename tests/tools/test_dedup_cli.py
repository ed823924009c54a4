"""``python -m pipelines.tools.dedup``: clusters end to end, input errors with file and line, atomic output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.tools import dedup

REPO = Path(__file__).resolve().parents[2]


def corpus(n: int = 60, words: int = 300, seed: int = 0) -> list[dict]:
    """Unrelated documents plus three planted duplicates: exact, re-punctuated, lightly edited."""
    rng = np.random.default_rng(seed)
    docs = [{"id": f"d{i}", "text": " ".join(f"w{j}" for j in rng.integers(0, 4000, words))} for i in range(n)]
    edited = docs[9]["text"].split()
    edited[100] = "changed"
    docs += [{"id": "copy-of-d2", "text": docs[2]["text"]},
             {"id": "loud-d5", "text": docs[5]["text"].upper().replace(" ", "; ")},
             {"id": 42, "text": " ".join(edited)}]
    return docs


EXPECTED = [["d2", "copy-of-d2"], ["d5", "loud-d5"], ["d9", 42]]


def write_jsonl(path: Path, rows: list, blank_every: int = 0) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    if blank_every:
        lines = [x for i, line in enumerate(lines) for x in ([line, ""] if i % blank_every == 0 else [line])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_clusters(path: Path) -> list[list]:
    return [json.loads(line)["cluster"] for line in path.read_text().splitlines()]


def test_clusters_end_to_end_as_a_subprocess(tmp_path):
    src = write_jsonl(tmp_path / "docs.jsonl", corpus())
    out = tmp_path / "out" / "clusters.jsonl"
    proc = subprocess.run([sys.executable, "-m", "pipelines.tools.dedup", "--in", str(src), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert read_clusters(out) == EXPECTED
    assert "63 documents" in proc.stderr and "3 clusters" in proc.stderr


def test_workers_chunks_and_blank_lines_do_not_change_the_result(tmp_path, monkeypatch):
    src = write_jsonl(tmp_path / "docs.jsonl", corpus(), blank_every=7)
    monkeypatch.setattr(dedup, "_CHUNK_BYTES", 4000)  # many ranges, so several workers share the file
    assert len(dedup.line_ranges(src)) > 5
    for workers in (1, 2):
        out = tmp_path / f"out{workers}.jsonl"
        assert dedup.main(["--in", str(src), "--out", str(out), "--workers", str(workers)]) == 0
        assert read_clusters(out) == EXPECTED


def test_progress_is_plain_log_lines_when_stderr_is_not_a_terminal(tmp_path, monkeypatch, caplog):
    src = write_jsonl(tmp_path / "docs.jsonl", corpus())
    monkeypatch.setattr(dedup, "_CHUNK_BYTES", 20_000)
    monkeypatch.setattr(dedup, "_LOG_EVERY_S", 0.0)
    with caplog.at_level("INFO", logger="pipelines.tools.dedup"):
        clusters, summary = dedup.find_clusters(dedup.DedupConfig(src, tmp_path / "out.jsonl", workers=1))
    progress = [r.getMessage() for r in caplog.records if "% of" in r.getMessage()]
    assert len(progress) >= 3 and progress[-1].startswith("100% of")
    assert clusters == EXPECTED and summary.documents == 63 and summary.clustered_documents == 6


def test_line_ranges_cover_the_file_at_line_starts(tmp_path):
    src = write_jsonl(tmp_path / "docs.jsonl", corpus(30))
    data = src.read_bytes()
    ranges = dedup.line_ranges(src, chunk_bytes=1000)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert all(data[start - 1:start] == b"\n" for start, _ in ranges[1:])


def test_dotted_fields_reach_into_objects(tmp_path):
    rows = [{"meta": {"key": r["id"]}, "query": {"text": r["text"]}} for r in corpus()]
    src = write_jsonl(tmp_path / "docs.jsonl", rows)
    out = tmp_path / "out.jsonl"
    assert dedup.main(["--in", str(src), "--out", str(out), "--field", "query.text", "--id-field", "meta.key",
                       "--workers", "1"]) == 0
    assert read_clusters(out) == EXPECTED


def test_no_duplicates_and_empty_input_give_an_empty_file(tmp_path):
    for name, rows in (("unique.jsonl", corpus()[:20]), ("empty.jsonl", [])):
        src = tmp_path / name
        src.write_text("".join(json.dumps(r) + "\n" for r in rows))
        out = tmp_path / f"out-{name}"
        assert dedup.main(["--in", str(src), "--out", str(out)]) == 0
        assert out.read_text() == ""


@pytest.mark.parametrize(("bad", "message"), [
    ('{"id": "x", "text": "a b c"', "invalid JSON"),
    ('["not", "an", "object"]', "expected a JSON object, got list"),
    ('{"id": "x"}', "missing text field 'text'"),
    ('{"text": "a b c"}', "missing id field 'id'"),
    ('{"id": "x", "text": 7}', "text field 'text' must be a string, got int"),
    ('{"id": [1], "text": "a"}', "id field 'id' must be a string or an integer, got list"),
    ('{"id": "d3", "text": "again"}', "duplicate id 'd3'"),
])
def test_bad_input_names_file_and_line_and_leaves_no_output(tmp_path, monkeypatch, capsys, bad, message):
    rows = corpus()
    lines = [json.dumps(r) for r in rows[:40]] + [bad] + [json.dumps(r) for r in rows[40:]]
    src = write_jsonl(tmp_path / "docs.jsonl", lines)
    out = tmp_path / "out.jsonl"
    monkeypatch.setattr(dedup, "_CHUNK_BYTES", 3000)  # the bad line sits in a later range: line numbers add up
    assert dedup.main(["--in", str(src), "--out", str(out), "--workers", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {src}:41: {message}")
    assert "\n" not in err and "Traceback" not in err
    assert not out.exists() and os.listdir(tmp_path) == ["docs.jsonl"]  # no output, no temp file left


def test_an_error_keeps_the_previous_output_untouched(tmp_path, capsys):
    src = write_jsonl(tmp_path / "docs.jsonl", ['{"id": 1, "text": "a b c"}', "{oops"])
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n")
    assert dedup.main(["--in", str(src), "--out", str(out)]) == 2
    assert f"{src}:2: invalid JSON" in capsys.readouterr().err
    assert out.read_text() == "previous\n"


def test_bad_settings_and_missing_file_are_one_line_errors(tmp_path, capsys):
    src = write_jsonl(tmp_path / "docs.jsonl", corpus()[:5])
    assert dedup.main(["--in", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "nope.jsonl: no such file" in capsys.readouterr().err
    assert dedup.main(["--in", str(src), "--out", str(tmp_path / "o.jsonl"), "--threshold", "1.5"]) == 2
    assert "--threshold" in capsys.readouterr().err


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        dedup.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--in", "--out", "--field", "--id-field", "--threshold", "--num-perm", "--ngram", "--seed",
                   "--workers"):
        assert option in text
