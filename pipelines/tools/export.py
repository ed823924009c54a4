"""Curated trajectories in the formats other tools read (``limi export``).

- ``hub``: a dataset folder ready for the Hugging Face Hub: ``data/train-00000-of-00001.parquet`` and a
  ``README.md`` dataset card. Every tool call's ``arguments`` and each row's ``tools`` are JSON strings.
  Arrow stores a list of objects as one struct type for the whole column, with the union of every
  object's keys: loaded back, a ``bash`` call's arguments gain ``path: null`` and ``content: null`` from
  a ``write_file`` call elsewhere, and a chat template then renders different text. A string keeps each
  object exactly; :func:`record_from_row` turns a row back into the record. The strings are written as
  the template's ``tojson`` writes (``json.dumps``, non-ASCII kept), so even left as strings they render
  the same tokens. The card is generated from the records and, when present, curate's report
  (``report.json`` beside the input) and ``metrics/curate.json``: sources, teachers, categories, the
  funnel, token lengths, what decontamination and the hidden-material check looked at and dropped.
  Only ``task_id``, ``episode_key``, ``source``, ``domain``, ``category`` and ``teacher`` of ``meta``
  are columns: the rest holds the tasks' verifier commands (hidden checks) and the final diff, which a
  published dataset should not carry by default; ``jsonl`` keeps everything.
- ``sharegpt``: LLaMA-Factory's ShareGPT form with tools, one JSON file of
  ``{"conversations": [{"from", "value"}], "system", "tools"}`` plus its entry in ``dataset_info.json``
  beside it (merged into an existing one). See :func:`to_sharegpt` for how turns map.
- ``jsonl``: the records as the trajectory schema validates them, one per line.
- ``mini-swe-agent``: one ``ID/ID.traj.json`` per record and ``preds.json``, in the tool-call form of
  mini-swe-agent v2 (see :func:`to_mini_swe_agent`).

Files are written atomically, one by one, so an export into an existing folder (a Hub clone, a
LLaMA-Factory ``data/`` folder) replaces only the files it writes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from pipelines.core.errors import UserError
from pipelines.core.io import atomic_write_json, atomic_write_text
from pipelines.core.paths import display_path
from pipelines.core.schema import TrajectoryRecord, read_jsonl

FORMATS = ("hub", "sharegpt", "jsonl", "mini-swe-agent")
HUB_PARQUET = "data/train-00000-of-00001.parquet"
META_COLUMNS = ("task_id", "episode_key", "source", "domain", "category", "teacher")


def dumps(value: Any) -> str:
    """JSON text as the chat template's ``tojson`` writes it (default separators, non-ASCII kept)."""
    return json.dumps(value, ensure_ascii=False)


def string_arguments(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``messages`` whose tool calls carry ``arguments`` as JSON text, so a table cannot merge their keys."""
    out = []
    for msg in messages:
        msg = dict(msg)
        if msg.get("tool_calls"):
            msg["tool_calls"] = [{**call, "function": {**call["function"], "arguments": dumps(call["function"]["arguments"])}}
                                 for call in msg["tool_calls"]]
        out.append(msg)
    return out


# ------------------------------------------------------------------ hub
def hub_row(record: dict[str, Any]) -> dict[str, Any]:
    """One record as a Hub row: messages with string ``arguments``, ``tools`` as a string, a few meta columns."""
    messages = string_arguments(record["messages"])
    meta = record.get("meta") or {}
    return {"messages": messages, "tools": dumps(record.get("tools") or []),
            **{name: str(meta.get(name) or "") for name in META_COLUMNS}}


def _drop_nulls(value: Any) -> Any:
    """Remove the keys Arrow filled with null (records are written without None values)."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def record_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """A Hub row (as ``datasets`` or pyarrow load it) back into a trajectory record's messages and tools."""
    messages = []
    for msg in _drop_nulls(row["messages"]):
        for call in msg.get("tool_calls") or []:
            if isinstance(call["function"].get("arguments"), str):
                call["function"]["arguments"] = json.loads(call["function"]["arguments"])
        messages.append(msg)
    tools = json.loads(row["tools"]) if isinstance(row.get("tools"), str) else row.get("tools") or []
    return {"messages": messages, "tools": tools}


def write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    """``rows`` as one Parquet file, written to a temp file beside ``path`` and renamed into place."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buffer.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _table(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def dataset_card(records: list[dict[str, Any]], license_id: str, report: dict[str, Any] | None,
                 metrics: dict[str, Any] | None, source_name: str, notes: list[str]) -> str:
    """The ``README.md`` of a Hub dataset folder: YAML front matter, then what the data is and how it was made."""
    n = len(records)
    size = "n<1K" if n < 1000 else "1K<n<10K" if n < 10_000 else "10K<n<100K" if n < 100_000 else "100K<n<1M"
    front = ["---", f"license: {license_id}", "task_categories:", "- text-generation", "language:", "- en",
             "tags:", "- agent", "- tool-use", "- sft", "- limi", "size_categories:", f"- {size}",
             "configs:", "- config_name: default", "  data_files:", "  - split: train", f"    path: {HUB_PARQUET}",
             "---", ""]
    metas = [r.get("meta") or {} for r in records]
    body = ["# LIMI-style agentic SFT set", "",
            f"{n} agent trajectories (`{source_name}`) selected by the pipeline's curate stage: verified "
            "successes, deduplicated, decontaminated against the evaluation tasks and their hidden material, "
            "and stratified over domain and category. Each row is one episode in the OpenAI chat form: the "
            "system prompt, the request, assistant turns with tool calls, tool results (`role: tool`), and "
            "the simulated user's feedback between rounds.", "",
            "## Loading", "", "```python", "import json", "from datasets import load_dataset", "",
            'ds = load_dataset("parquet", data_files="' + HUB_PARQUET + '")["train"]',
            "row = ds[0]",
            'tools = json.loads(row["tools"])',
            'for message in row["messages"]:',
            "    message = {k: v for k, v in message.items() if v is not None}  # Arrow fills absent keys with None",
            '    for call in message.get("tool_calls") or []:',
            '        call["function"]["arguments"] = json.loads(call["function"]["arguments"])',
            "```", "",
            "Tool-call `arguments` and `tools` are JSON strings, not objects: Arrow gives a column of objects "
            "one struct type with every key any row has, so objects would come back with other rows' keys set "
            "to null and render differently in a chat template. The strings are `json.dumps` output, as a "
            "template's `tojson` writes, so templates that insert string arguments as they are (as this "
            "project's does) render the same text without parsing them.", "",
            "## Columns", "", *_table(("column", "what"), [
                ("messages", "list of {role, content, tool_calls, tool_call_id}; tool_calls[].function.arguments is a JSON string"),
                ("tools", "the tool schemas offered to the agent, a JSON string (OpenAI function format)"),
                ("task_id", "the task the episode worked on"), ("episode_key", "the episode's key in the pipeline"),
                ("source", "where the task came from: human (seed tasks), synthetic, pr"),
                ("domain", "software or research work"), ("category", "LIMI's task category"),
                ("teacher", "the model (or `replay`) that produced the trajectory")]), "",
            "## Composition", ""]
    for title, key in (("Sources", "source"), ("Teachers", "teacher"), ("Domains", "domain"), ("Categories", "category")):
        body += [f"### {title}", "", *_table((key, "samples"), sorted(Counter(m.get(key) or "?" for m in metas).items(),
                                                                       key=lambda kv: (-kv[1], kv[0]))), ""]
    body += ["## How it was made", ""]
    if report is None:
        body += ["No curate report was found beside the input, so the selection funnel is not described here.", ""]
    else:
        funnel = report.get("funnel") or {}
        steps = [k[len("after_"):] for k in funnel if k.startswith("after_")]
        rows = [("input", funnel.get("input", "?"), "")]
        rows += [(step, funnel.get(f"after_{step}", "?"), funnel.get(f"dropped_{step}", "?")) for step in steps]
        body += ["The funnel, in order (samples left after each step, and dropped by it):", "",
                 *_table(("step", "left", "dropped"), rows), ""]
        samples = report.get("samples") or []
        kept_tokens = [s["tokens"] for s in samples if s.get("status") == "kept" and isinstance(s.get("tokens"), int)]
        if kept_tokens:
            total = (metrics or {}).get("kept_tokens", sum(kept_tokens))
            body += ["### Token lengths", "",
                     "With the student's tokenizer and chat template (samples over the limit are dropped, never cut):", "",
                     *_table(("min", "median", "mean", "max", "total"),
                             [(min(kept_tokens), int(statistics.median(kept_tokens)),
                               round(statistics.fmean(kept_tokens)), max(kept_tokens), total)]), ""]
        drops = Counter(s.get("reason") for s in samples if s.get("status") == "dropped")
        body += ["### Decontamination and hidden material", "",
                 f"- Decontamination: word 13-gram overlap with {report.get('eval_tasks_checked', '?')} evaluation "
                 f"tasks (the built-in suite, HumanEval, AgencyBench files when present); "
                 f"{funnel.get('dropped_decontam', drops.get('decontam', 0))} samples dropped.",
                 f"- Hidden material: {report.get('hidden_material_checked', '?')} pieces of those tasks' hidden material "
                 "(reference solutions, check commands, rubric criteria, gold patches) searched for in messages, "
                 f"tool-call arguments and final diffs; {funnel.get('dropped_hidden_material', drops.get('hidden_material', 0))} "
                 "samples dropped.", ""]
        if funnel.get("after_selection") not in (None, n):
            notes.append(f"the curate report selected {funnel.get('after_selection')} samples but the input holds {n}")
    if notes:
        body += ["## Notes", "", *[f"- {note}" for note in notes], ""]
    body += ["## Not included", "",
             "The episodes' `meta` beyond the columns above (verifier verdicts with their check commands, the final "
             "workspace diff, sampling settings, package versions) stays with the pipeline: the check commands are "
             "the tasks' hidden tests. `limi export jsonl` writes the records whole.", ""]
    return "\n".join(front + body)


def export_hub(records: list[dict[str, Any]], out: Path, *, license_id: str, report_path: Path | None,
               metrics_path: Path | None, source_name: str) -> list[Path]:
    """Write the Hub dataset folder; returns the files written."""
    report = _read_json(report_path)
    metrics = _read_json(metrics_path)
    write_parquet([hub_row(r) for r in records], out / HUB_PARQUET)
    atomic_write_text(out / "README.md", dataset_card(records, license_id, report, metrics, source_name, []))
    return [out / HUB_PARQUET, out / "README.md"]


def _read_json(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def push_to_hub(folder: Path, repo_id: str, private: bool) -> str:
    """Upload ``folder`` to the dataset repository ``repo_id`` with the token in ``HF_TOKEN``; returns its URL."""
    token = os.environ.get("HF_TOKEN")
    if not token:
        raise UserError("--push needs HF_TOKEN set (a Hugging Face write token) and network access to huggingface.co")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                          commit_message="Upload LIMI SFT set", allow_patterns=["README.md", "data/*.parquet"])
    except Exception as exc:  # network down, rejected token, unknown namespace: one line, not a traceback
        raise UserError(f"push to the Hub dataset {repo_id} failed (it needs network access to huggingface.co "
                        f"and a write token): {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    return f"https://huggingface.co/datasets/{repo_id}"


# ------------------------------------------------------------------ sharegpt
def to_sharegpt(record: dict[str, Any], where: str) -> tuple[dict[str, Any], Counter]:
    """One record in LLaMA-Factory's ShareGPT form; also counts of what could not be carried over.

    The first system message becomes ``system``; ``user`` turns are ``human``; an assistant turn with tool
    calls is ``function_call`` (one call as ``{"name", "arguments"}``, several as a list of them), without
    tools ``gpt``; the results of one turn's calls are one ``observation`` (several: a JSON list of their
    texts). LLaMA-Factory needs human/observation and gpt/function_call turns to alternate, starting with
    a human turn and ending with an assistant one, so an observation that no assistant turn answers (the
    ``finish`` call's "Finished." before the user's feedback or at the end) is left out, and a
    function_call's accompanying text is left out (the format has no place for it); both are counted.
    ``where``: ``FILE:LINE`` for the error when a record cannot be made to alternate.
    """
    messages = list(record["messages"])
    system = ""
    if messages and messages[0].get("role") == "system":
        system = messages.pop(0).get("content") or ""
    lost: Counter = Counter()
    turns: list[dict[str, str]] = []
    i = 0
    while i < len(messages):
        msg = messages[i]
        role = msg.get("role")
        if role == "user":
            turns.append({"from": "human", "value": msg.get("content") or ""})
        elif role == "assistant":
            calls = msg.get("tool_calls") or []
            if calls:
                fns = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in calls]
                turns.append({"from": "function_call", "value": dumps(fns[0] if len(fns) == 1 else fns)})
                if (msg.get("content") or "").strip():
                    lost["assistant text beside tool calls"] += 1
            else:
                turns.append({"from": "gpt", "value": msg.get("content") or ""})
        elif role == "tool":
            results = [msg.get("content") or ""]
            while i + 1 < len(messages) and messages[i + 1].get("role") == "tool":
                i += 1
                results.append(messages[i].get("content") or "")
            answered = i + 1 < len(messages) and messages[i + 1].get("role") == "assistant"
            if answered:
                turns.append({"from": "observation", "value": results[0] if len(results) == 1 else dumps(results)})
            else:
                lost["tool results no assistant turn answers"] += 1
        else:
            raise UserError(f"{where}: message {i + 1} has role {role!r}, which ShareGPT cannot hold")
        i += 1
    for k, turn in enumerate(turns):
        expected = ("human", "observation") if k % 2 == 0 else ("gpt", "function_call")
        if turn["from"] not in expected:
            raise UserError(f"{where}: turn {k + 1} is {turn['from']!r} where ShareGPT needs "
                            f"{' or '.join(expected)} (user and assistant turns must alternate)")
    if len(turns) % 2:
        raise UserError(f"{where}: the conversation ends on a {turns[-1]['from']!r} turn; ShareGPT needs it to end "
                        f"with an assistant turn")
    out: dict[str, Any] = {"conversations": turns, "tools": dumps([t.get("function", t) for t in record.get("tools") or []])}
    if system:
        out["system"] = system
    return out, lost


def export_sharegpt(records: list[tuple[str, dict[str, Any]]], out: Path, name: str) -> tuple[list[Path], Counter]:
    """``out/NAME.json`` and its entry in ``out/dataset_info.json``; returns the files and what was left out."""
    rows, lost = [], Counter()
    for where, record in records:
        row, dropped = to_sharegpt(record, where)
        rows.append(row)
        lost.update(dropped)
    data_file = out / f"{name}.json"
    atomic_write_json(data_file, rows)
    info_file = out / "dataset_info.json"
    info = _read_json(info_file) or {}
    info[name] = {"file_name": data_file.name, "formatting": "sharegpt",
                  "columns": {"messages": "conversations", "system": "system", "tools": "tools"}}
    atomic_write_json(info_file, info)
    return [data_file, info_file], lost


# ------------------------------------------------------------------ mini-swe-agent
def to_mini_swe_agent(record: dict[str, Any]) -> dict[str, Any]:
    """One record as a mini-swe-agent trajectory (``trajectory_format: mini-swe-agent-1.1``, tool-call mode).

    Messages keep their roles; tool calls are in the OpenAI wire form mini-swe-agent's tool-call models
    store (``arguments`` a JSON string); results are ``role: tool`` with their ``tool_call_id``. ``info``
    has mini-swe-agent's ``exit_status`` (``Submitted`` when the episode finished, else its termination),
    ``submission`` (the final diff), ``model_stats`` and ``config.model.model_name`` (the teacher), and
    under ``limi`` the meta columns the Hub export has, ``passed`` (the verifier's verdict) and the record's
    ``tools`` (mini-swe-agent's format has no place for them): the rest of meta (check commands, the hidden
    tests) stays with the pipeline, as for ``hub``.
    """
    meta = record.get("meta") or {}
    messages = string_arguments(record["messages"])
    termination = meta.get("termination")
    tokens = meta.get("tokens") or {}
    info = {"exit_status": "Submitted" if termination == "finished" else (termination or "unknown"),
            "submission": meta.get("final_diff") or "",
            "model_stats": {"instance_cost": tokens.get("cost_usd", 0.0), "api_calls": meta.get("steps", 0)},
            "config": {"model": {"model_name": meta.get("teacher") or ""}},
            "limi": {**{name: meta[name] for name in META_COLUMNS if meta.get(name)}, "passed": bool(meta.get("passed")),
                     "tools": record.get("tools") or []}}
    return {"info": info, "messages": messages, "trajectory_format": "mini-swe-agent-1.1"}


def export_mini_swe_agent(records: list[dict[str, Any]], out: Path) -> list[Path]:
    """``out/ID/ID.traj.json`` per record (ID: its episode key, else task id and position) and ``out/preds.json``
    (SWE-bench's predictions form, ``{ID: {instance_id, model_name_or_path, model_patch}}``, with the task id as
    the instance id)."""
    written, preds = [], {}
    for n, record in enumerate(records):
        meta = record.get("meta") or {}
        ident = str(meta.get("episode_key") or f"{meta.get('task_id') or 'record'}-{n}")
        path = out / ident / f"{ident}.traj.json"
        if path in written:
            raise UserError(f"two records have the episode key {ident}; export them from a file where keys are unique")
        atomic_write_json(path, to_mini_swe_agent(record))
        written.append(path)
        preds[ident] = {"instance_id": str(meta.get("task_id") or ident), "model_name_or_path": meta.get("teacher") or "",
                        "model_patch": meta.get("final_diff") or ""}
    atomic_write_json(out / "preds.json", preds)
    return [*written, out / "preds.json"]


# ------------------------------------------------------------------ jsonl
def export_jsonl(records: list[dict[str, Any]], out: Path, name: str) -> list[Path]:
    """The validated records, one JSON line each, to ``out/NAME.jsonl``."""
    path = out / f"{name}.jsonl"
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return [path]


def load_records(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(FILE:LINE, record)`` for every record of ``path``, validated by the trajectory schema."""
    if not path.exists():
        raise UserError(f"{path}: no such file (run `limi run curate` first, or give --in FILE)")
    shown = display_path(path)
    return [(f"{shown}:{line}", rec.model_dump(mode="json", exclude_none=True))
            for line, rec in read_jsonl(path, TrajectoryRecord)]

