"""What a rubric judge is shown of the work: the evidence for each requirement, within a token budget.

    evidence = gather_evidence(workspace, sandbox, requirements, messages=transcript, runs=runs,
                               budget_tokens=6000)
    prompt_part = evidence.text      # sections for the judge; evidence.left_out names what was not shown

The judge decides each requirement from what it is shown, so it must see the work itself, not a sample.
The evidence is, in this order:

1. what the agent reported (its last message and the ``finish`` summary);
2. the requirements checked by execution: each command, its exit status and the end of its output;
3. the outputs of the last commands the agent ran (the last few tool results of the transcript, cut);
4. the files the agent created or changed against the workspace's baseline commit, the most relevant to
   the requirements first, each cut to a share of the budget;
5. a note of what was left out: the files not shown or shown cut, with their sizes, and deleted files.

Changed files are found with ``git status`` run through the sandbox on a scratch copy (``.git`` is the
agent's to write, so the host never runs git in the workspace) and read from the host without following
any symlink: a path whose real location is outside the workspace, or that is not a regular file, is not
read. Binary files (a NUL byte in the first 8 KiB, or not UTF-8) are listed, never shown.

The budget counts the evidence only (not the fixed instructions, the task or the requirements) and is in
tokens estimated as characters / 4, the usual ratio for English text and code under BPE tokenizers; no
tokenizer is loaded for it, since the judge may be any model.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

CHARS_PER_TOKEN = 4
#: git status of the workspace against its baseline commit, NUL-separated; hooks and fsmonitor off
STATUS_COMMAND = ("git -c core.fsmonitor=false -c core.hooksPath=/dev/null -c core.quotePath=false "
                  "status --porcelain=v1 -z --untracked-files=all --no-renames")
BINARY_PROBE_BYTES = 8192
MAX_READ_BYTES = 2 << 20
LAST_TOOL_RESULTS = 4
# shares of the budget: the agent's report, the execution checks and the tool outputs are cut to these;
# the files get the rest, and the note of what was left out keeps this much for itself
REPORT_SHARE, RUNS_SHARE, TOOLS_SHARE, NOTE_SHARE = 0.08, 0.15, 0.17, 0.08
FILES_HEADING = "## Files the assistant created or changed (most relevant to the requirements first)"
MIN_FILE_CHARS = 200  # a file is not worth showing in fewer characters than this
MAX_FILE_SHARE = 0.5  # no one file takes more than this share of the files' budget while others wait
_WORD = re.compile(r"[a-z0-9]+")
_SPLIT_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
STOPWORDS = frozenset(
    "the and for with that this from are was were have has had not but all any can will able each its into "
    "must should would could when then than them they their there what which who how use used using does "
    "done also only more most such may one two via per out about after before under over same other".split())


@dataclass
class ChangedFile:
    """A file the agent created (``added``), changed (``modified``) or deleted against the baseline."""

    path: str
    status: str
    size: int = 0
    text: str | None = None  # None: binary, unreadable, a symlink or not a regular file
    why_not: str = ""
    score: float = 0.0


@dataclass
class Run:
    """A requirement checked by execution, as the judge sees it: command, exit status, end of output."""

    command: str
    exit_code: int | None
    output: str


@dataclass
class Evidence:
    """The evidence for a judge: ``text`` to put in the prompt, ``left_out`` naming what was not shown."""

    text: str
    shown: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    budget_chars: int = 0


def gather_evidence(workspace: Path, sandbox, requirements: Sequence[str], *,
                    messages: Sequence[dict[str, Any]] = (), runs: Sequence[Run] = (),
                    budget_tokens: int = 6000, timeout_s: float = 60.0) -> Evidence:
    """The evidence for ``requirements`` about ``workspace`` within ``budget_tokens`` (see the module docstring).

    ``sandbox`` runs ``git status`` on a scratch copy; without one (or when git fails) every file of the
    workspace counts as the agent's, and the note says the baseline could not be read.
    """
    files, baseline_note = changed_files(workspace, sandbox, timeout_s=timeout_s)
    return build_evidence(files, requirements, messages=messages, runs=runs, budget_tokens=budget_tokens,
                          baseline_note=baseline_note)


def changed_files(workspace: Path, sandbox, *, timeout_s: float = 60.0) -> tuple[list[ChangedFile], str]:
    """(the files created, changed or deleted since the baseline commit, a note when that is unknown)."""
    workspace = Path(os.path.realpath(workspace))
    statuses: list[tuple[str, str]] | None = None
    note = ""
    if sandbox is not None:
        res = sandbox.run(STATUS_COMMAND, timeout_s=timeout_s, scratch=True)
        if res.exit_code == 0:
            statuses = parse_status(res.output)
        else:
            note = f"the baseline could not be read (git status exited {res.exit_code}); all files are listed"
    else:
        note = "no baseline to compare with; all files are listed"
    if statuses is None:
        statuses = []
        for dirpath, dirnames, filenames in os.walk(workspace):  # symlinked folders are not entered
            dirnames[:] = sorted(d for d in dirnames if d != ".git")
            statuses += [(str((Path(dirpath) / name).relative_to(workspace)), "added") for name in sorted(filenames)]
    return [read_changed(workspace, path, status) for path, status in statuses], note


def parse_status(output: str) -> list[tuple[str, str]]:
    """(path, added|modified|deleted) from ``git status --porcelain=v1 -z`` output, sorted by path."""
    found: dict[str, str] = {}
    for entry in output.split("\0"):
        if len(entry) < 4 or entry[2] != " ":
            continue
        code, path = entry[:2], entry[3:]
        if path.endswith("/"):  # an untracked nested repository: git does not look inside
            continue
        found[path] = "deleted" if "D" in code else "added" if code in ("??", "A ", "AM") else "modified"
    return sorted(found.items())


def read_changed(workspace: Path, relative: str, status: str) -> ChangedFile:
    """``relative`` read from the host if it is a regular text file whose real path is inside ``workspace``."""
    item = ChangedFile(relative, status)
    if status == "deleted":
        item.why_not = "deleted"
        return item
    path = workspace / relative
    try:
        info = os.lstat(path)
    except OSError:
        item.why_not = "gone"
        return item
    item.size = info.st_size
    real = Path(os.path.realpath(path))
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode) or not real.is_relative_to(workspace):
        item.why_not = "symlink" if stat.S_ISLNK(info.st_mode) else "not a regular file"
        return item
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(MAX_READ_BYTES)
    except OSError:
        item.why_not = "unreadable"
        return item
    if b"\0" in data[:BINARY_PROBE_BYTES]:
        item.why_not = "binary"
        return item
    try:
        item.text = data.decode("utf-8")
    except UnicodeDecodeError:
        item.why_not = "binary"
    return item


def words(text: str) -> set[str]:
    """The distinct words of ``text`` worth matching: lower case, camelCase and snake_case split, stopwords
    and words under three characters dropped."""
    return {w for w in _WORD.findall(_SPLIT_CAMEL.sub(" ", text).lower()) if len(w) > 2 and w not in STOPWORDS}


def relevance(item: ChangedFile, wanted: set[str]) -> float:
    """How much a file bears on the requirements: word overlap between the requirements and the file.

    The reading chosen: each distinct requirement word found in the file's path counts 3, each found in its
    content counts 1. Distinct words, not occurrences, so a long or repetitive file does not win by
    repeating a word; the path weighs more because a file named after what a requirement is about
    (``history.cpp`` for "chat history") is usually where it is met. A file that cannot be shown scores 0.
    """
    if item.text is None:
        return 0.0
    return 3.0 * len(words(item.path) & wanted) + len(words(item.text) & wanted)


def build_evidence(files: Sequence[ChangedFile], requirements: Sequence[str], *,
                   messages: Sequence[dict[str, Any]] = (), runs: Sequence[Run] = (), budget_tokens: int = 6000,
                   baseline_note: str = "") -> Evidence:
    """Lay out the evidence sections within ``budget_tokens`` (characters / 4); see the module docstring."""
    budget = max(1, budget_tokens) * CHARS_PER_TOKEN
    sections: list[str] = []
    report = agent_report(messages)
    if report:
        sections.append("## What the assistant reported\n" + cut_middle(report, int(budget * REPORT_SHARE)))
    if runs:
        per_run = int(budget * RUNS_SHARE) // len(runs)
        shown_runs = [f"$ {run.command}\n(exit status {run.exit_code})\n{cut_middle(run.output.strip(), per_run)}"
                      for run in runs]
        sections.append("## Requirements checked by execution (the checker ran these)\n" + "\n\n".join(shown_runs))
    tool_text = last_tool_outputs(messages, int(budget * TOOLS_SHARE))
    if tool_text:
        sections.append("## Outputs of the last commands the assistant ran\n" + tool_text)
    used = sum(len(s) + 2 for s in sections) + len(FILES_HEADING) + 2
    note_budget = int(budget * NOTE_SHARE)
    files_budget = max(0, budget - used - note_budget)

    wanted = set().union(*(words(r) for r in requirements)) if requirements else set()
    ranked = list(files)
    for item in ranked:
        item.score = relevance(item, wanted)
    ranked.sort(key=lambda f: (-f.score, f.size, f.path))
    shown, left, blocks = [], [], []
    remaining = files_budget
    for item in ranked:
        if item.text is None:
            left.append(f"{item.path} ({item.why_not}" + (f", {item.size} bytes)" if item.size else ")"))
            continue
        header = f"--- {item.path} ({item.status}, {len(item.text)} chars)\n"
        room = min(remaining, max(int(files_budget * MAX_FILE_SHARE), MIN_FILE_CHARS)) - len(header) - 1
        if room < MIN_FILE_CHARS:
            left.append(f"{item.path} (not shown, {len(item.text)} chars)")
            continue
        body = cut_head(item.text, room)
        if len(item.text) > room:
            left.append(f"{item.path} (cut: {room} of {len(item.text)} chars shown)")
        blocks.append(header + body)
        shown.append(item.path)
        remaining -= len(header) + len(body) + 1
    if blocks:
        sections.append(FILES_HEADING + "\n" + "\n".join(blocks))
    elif not files:
        sections.append(FILES_HEADING + "\n(none)")
    # the note gets what is left of the budget, at least its own share
    note = left_out_note(left, baseline_note, budget - len("\n\n".join(sections)) - 2)
    if note:
        sections.append(note)
    text = "\n\n".join(sections)
    return Evidence(text[:budget], shown, left, budget)


def left_out_note(left: list[str], baseline_note: str, limit: int) -> str:
    """"## Left out" with as many entries as fit in ``limit`` characters, then a count of the rest."""
    if not left and not baseline_note:
        return ""
    lines = ["## Left out (not shown, or shown cut)"] + ([f"Note: {baseline_note}"] if baseline_note else [])
    size = sum(len(line) + 1 for line in lines)
    reserve = len(f"- ... and {len(left)} more files") + 1
    for index, entry in enumerate(left):
        line = f"- {entry}"
        last = index == len(left) - 1
        if size + len(line) + 1 > limit - (0 if last else reserve):
            lines.append(f"- ... and {len(left) - index} more files")
            break
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def agent_report(messages: Sequence[dict[str, Any]]) -> str:
    """The agent's last assistant message: its text and the summary it gave ``finish``."""
    for message in reversed(messages):
        if message.get("role") != "assistant":
            continue
        parts = [str(message.get("content") or "").strip()]
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            if fn.get("name") == "finish":
                args = fn.get("arguments")
                args = args if isinstance(args, dict) else _json_object(args)
                parts.append(str(args.get("summary") or ""))
        return "\n".join(p for p in parts if p)
    return ""


def last_tool_outputs(messages: Sequence[dict[str, Any]], limit: int, count: int = LAST_TOOL_RESULTS) -> str:
    """The last ``count`` tool results with the call that produced them, each cut to its share of ``limit``."""
    calls: dict[str, str] = {}
    results: list[tuple[str, str]] = []
    for message in messages:
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            args = fn.get("arguments")
            shown = json.dumps(args, ensure_ascii=False) if isinstance(args, dict) else str(args or "")
            calls[str(call.get("id", ""))] = f"{fn.get('name', '?')}({cut_head(shown, 200)})"
        if message.get("role") == "tool":
            results.append((calls.get(str(message.get("tool_call_id", "")), "a tool"), str(message.get("content") or "")))
    results = results[-count:]
    if not results or limit <= 0:
        return ""
    each = limit // len(results)
    return "\n\n".join(f"> {call}\n{cut_middle(out.strip(), max(0, each - len(call) - 4))}" for call, out in results)


def cut_head(text: str, limit: int) -> str:
    """``text`` up to ``limit`` characters, marked where cut (the start is kept: a file reads from the top)."""
    if len(text) <= limit:
        return text
    mark = f"\n[... {len(text) - limit} more chars]"
    return text[:max(0, limit - len(mark))] + mark


def cut_middle(text: str, limit: int) -> str:
    """``text`` up to ``limit`` characters, head and tail kept (a command's verdict is at its end)."""
    if len(text) <= limit:
        return text
    mark = f"\n[... {len(text) - limit} chars cut ...]\n"
    keep = max(0, limit - len(mark))
    return text[:keep // 3] + mark + text[len(text) - (keep - keep // 3):]


def _json_object(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
