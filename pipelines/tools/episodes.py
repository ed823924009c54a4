"""Find one episode record and render it for a person at a terminal (``limi show``).

An episode is named by its ``meta.episode_key`` (or a prefix of it that only one key has), by its
``meta.task_id`` (the first record of that task), or by ``FILE:LINE`` (that line of any file in the
trajectory schema). Names are looked up in the files the pipeline writes, in this order:
``data/trajectories/episodes.jsonl`` (collect), ``data/eval/episodes.jsonl`` (eval trials),
``data/sft/train.jsonl`` (curate's selection, the same records as collect's).

Records are read with :func:`pipelines.core.schema.read_jsonl` against
:class:`~pipelines.core.schema.TrajectoryRecord`, so a line that is not JSON, or not a trajectory,
stops with ``FILE:LINE: ...`` like every stage. Its meta keeps fields it does not declare, so an eval
trial's ``model``, ``suite`` and ``subtasks`` are read from the same model.

The rendering is plain text (no colours, so it pipes into ``less`` and files alike): a header with
the task, teacher or model, rounds and verdicts (first round, final, every check with its name cut to
one line, pass or fail and ``method`` when recorded), then every message in order. User turns after
the request are labelled: a feedback round, the next subtask of an eval trial, or the agent's notice
that a turn could not be read as a tool call. Tool calls show their arguments one per line, and
tool results name the call they answer. Long texts (the system prompt, tool outputs, long arguments)
are cut to their head and tail with a note of what was left out, unless ``full``.

:func:`pipelines.agent.users.render_message` (what the human user reads during collect) prints one
message at a time with arguments as one JSON line cut at 300 characters; a whole episode read
afterwards needs the round labels, the call each result answers and multi-line arguments, so the
rendering here is its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from pipelines.core.errors import UserError
from pipelines.core.paths import display_path, repo_root
from pipelines.core.schema import TrajectoryRecord, read_jsonl

# Where ``limi show`` looks for an episode id, in this order.
EPISODE_FILES = ("data/trajectories/episodes.jsonl", "data/eval/episodes.jsonl", "data/sft/train.jsonl")
# The agent loop's notice after a turn that was not a readable tool call (pipelines/agent/loop.py, reject()).
FORMAT_NOTICE = "Your last message could not be read as a tool call"
RULE = "─" * 72


@dataclass(frozen=True)
class Located:
    """One record and where it came from (file relative to the project when inside it, 1-based line)."""

    record: dict[str, Any]
    file: str
    line: int


# ------------------------------------------------------------------ finding
def parse_location(name: str) -> tuple[Path, int] | None:
    """``FILE:LINE`` as a path and a line number, or None when ``name`` is not of that form."""
    match = re.fullmatch(r"(.+):(\d+)", name)
    if not match:
        return None
    return Path(match.group(1)), int(match.group(2))


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, record)`` of a trajectory file, validated; records as plain dicts like ``read_trajectories``."""
    for lineno, rec in read_jsonl(path, TrajectoryRecord):
        yield lineno, rec.model_dump(mode="json", exclude_none=True)


def read_line(path: Path, line: int, root: Path | None = None) -> Located:
    """The record on ``line`` of ``path``; lines before it are read with the same checks."""
    if line < 1:
        raise UserError(f"{path}:{line}: line numbers start at 1")
    if not path.is_file():
        raise UserError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    last = 0
    for lineno, record in _records(path):
        if lineno == line:
            return Located(record, display_path(path, root), lineno)
        if lineno > line:
            break
        last = lineno
    raise UserError(f"{path}:{line}: no record on this line (blank, or past the last record at line {last})")


def find_episode(name: str, files: list[Path] | None = None, root: Path | None = None) -> Located:
    """The episode ``name`` names: ``FILE:LINE``, else an episode key, a unique key prefix or a task id.

    ``files``: where to look for keys and task ids (default :data:`EPISODE_FILES` under the project root,
    those that exist). Raises UserError when nothing matches or a prefix matches several keys.
    """
    root = root or repo_root()
    location = parse_location(name)
    if location is not None:
        path, line = location
        if not path.is_absolute() and not path.exists() and (root / path).exists():
            path = root / path
        if path.exists():
            return read_line(path, line, root)
    if files is None:
        files = [root / rel for rel in EPISODE_FILES if (root / rel).exists()]
        if not files:
            raise UserError(f"no episode files under {root} ({', '.join(EPISODE_FILES)}): run the pipeline "
                            f"(`limi run collect`) or name a record as FILE:LINE")
    seen: list[Located] = []
    for path in files:
        seen.extend(Located(rec, display_path(path, root), line) for line, rec in _records(path))
    where = ", ".join(display_path(p, root) for p in files)

    def key(loc: Located) -> str:
        return str(loc.record.get("meta", {}).get("episode_key") or "")

    exact = [loc for loc in seen if key(loc) == name]
    if exact:
        return exact[0]
    prefixed = [loc for loc in seen if name and key(loc).startswith(name)]
    keys = sorted({key(loc) for loc in prefixed})
    if len(keys) == 1:
        return prefixed[0]
    if len(keys) > 1:
        shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
        raise UserError(f"episode key prefix {name!r} matches {len(keys)} episodes ({shown}); give more characters")
    by_task = [loc for loc in seen if loc.record.get("meta", {}).get("task_id") == name]
    if by_task:
        return by_task[0]
    example = next((key(loc) for loc in seen if key(loc)), "")
    hint = f" (keys look like {example!r})" if example else ""
    raise UserError(f"no episode with key or task id {name!r} in {where}{hint}; "
                    f"name a record as FILE:LINE to read any file")


# ------------------------------------------------------------------ rendering
def cut(text: str, max_chars: int, max_lines: int) -> str:
    """``text`` cut to its head and tail when it is longer than ``max_chars`` or ``max_lines``, with a
    note of what was left out (0 for either limit: no limit)."""
    lines = text.split("\n")
    if max_lines and len(lines) > max_lines:
        keep_head = max(1, max_lines * 2 // 3)
        keep_tail = max_lines - keep_head
        head, tail = lines[:keep_head], lines[len(lines) - keep_tail:] if keep_tail else []
        left = len(lines) - len(head) - len(tail)
        text = "\n".join([*head, f"[... {left} lines left out; --full shows them ...]", *tail])
    if max_chars and len(text) > max_chars:
        half = max_chars // 2
        return f"{text[:half]}\n[... {len(text) - 2 * half} characters left out; --full shows them ...]\n{text[-half:]}"
    return text


def one_line(text: str, width: int) -> str:
    """``text`` on one line (line breaks shown as ``↵``, runs of spaces collapsed), cut to ``width``
    characters with an ellipsis: how a check's command reads in a list."""
    flat = " ↵ ".join(" ".join(line.split()) for line in text.strip().split("\n") if line.strip())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line else prefix.rstrip() for line in text.split("\n"))


def _verdict(v: dict[str, Any] | None) -> str:
    if not v:
        return "not recorded"
    word = "PASS" if v.get("passed") else "FAIL"
    score = v.get("score")
    text = f"{word} (score {score:.2f})" if isinstance(score, (int, float)) else word
    if v.get("infra_error"):
        text += f", infrastructure error: {one_line(str(v['infra_error']), 80)}"
    return text


def _checks(checks: list[dict[str, Any]] | None, indent: str = "  ") -> list[str]:
    out = []
    for check in checks or []:
        method = f"  [{check['method']}]" if check.get("method") else ""
        out.append(f"{indent}{'PASS' if check.get('passed') else 'FAIL'}  {one_line(str(check.get('name', '')), 70)}{method}")
    return out


def render_header(loc: Located) -> list[str]:
    """The episode's identity, settings and verdicts, one fact per line."""
    meta = loc.record.get("meta") or {}
    out = [f"episode   {meta.get('episode_key') or '(no key)'}   {loc.file}:{loc.line}"]
    task = meta.get("task_id") or "(no task id)"
    kind = "/".join(x for x in (meta.get("domain"), meta.get("category")) if x)
    about = ", ".join(x for x in (meta.get("source"), kind, f"PR {meta['pr']}" if meta.get("pr") else "") if x)
    out.append(f"task      {task}" + (f"   ({about})" if about else ""))
    if meta.get("suite") or meta.get("model"):  # an eval trial: the model under test
        info = meta.get("model_info") or {}
        detail = ", ".join(str(info[k]) for k in ("model", "backend", "weights") if info.get(k))
        out.append(f"model     {meta.get('model') or meta.get('teacher') or '?'}" + (f" ({detail})" if detail else "")
                   + f"   suite {meta.get('suite') or '?'}, trial {meta.get('trial', 0)}")
    else:
        backend = meta.get("teacher_backend")
        out.append(f"teacher   {meta.get('teacher') or '?'}" + (f" ({backend})" if backend else ""))
    imported = meta.get("imported")
    if isinstance(imported, dict):  # a `limi import` record: where it came from and what its source said
        at = f":{imported['line']}" if imported.get("line") else f" [{imported.get('index', 0)}]"
        facts = [f"exit status {imported['exit_status']}" if imported.get("exit_status") else "",
                 f"verification {imported.get('verification', '?')}"
                 + (f" ({imported['verified_by']})" if imported.get("verified_by") else "")]
        out.append(f"imported  {imported.get('format', '?')} from {imported.get('file', '?')}{at}   "
                   + ", ".join(f for f in facts if f))
    sampling = meta.get("sampling")
    if sampling:
        out.append("sampling  " + ", ".join(f"{k} {v}" for k, v in sampling.items()))
    rounds = f"{meta.get('rounds_used', 0)}" + (f" of {meta['max_rounds']}" if meta.get("max_rounds") else "")
    users = ", ".join(x for x in (meta.get("user"), f"feedback {meta['feedback']}" if meta.get("feedback") else "") if x)
    out.append(f"rounds    {rounds}" + (f"   (user: {users})" if users else ""))
    out.append(f"ended     {meta.get('termination') or '?'}" + (f": {one_line(str(meta['error']), 100)}" if meta.get("error") else "")
               + f"   {meta.get('steps', 0)} steps, {meta.get('tool_calls', 0)} tool calls "
               f"({meta.get('invalid_tool_calls', 0)} invalid), {meta.get('format_errors', 0)} format errors")
    tokens = meta.get("tokens") or {}
    if tokens:
        out.append(f"tokens    {tokens.get('prompt', 0)} prompt ({tokens.get('cached', 0)} cached), "
                   f"{tokens.get('completion', 0)} completion")
    out.append(f"verdict   {'PASSED' if meta.get('passed') else 'NOT PASSED'}"
               + (f" (the person {meta['human_verdict']} it)" if meta.get("human_verdict") else "")
               + (f"   verifier {meta['verifier']}" if meta.get("verifier") else ""))
    out.append(f"  first round  {_verdict(meta.get('first_round'))}")
    final = meta.get("final")
    out.append(f"  final        {_verdict(final)}")
    checks = (final or {}).get("checks")
    if checks:
        passed = sum(1 for c in checks if c.get("passed"))
        out.append(f"  checks       {passed} of {len(checks)} passed")
        out.extend(_checks(checks, "    "))
    for sub in meta.get("subtasks") or []:
        out.append(f"  subtask {sub.get('number')}    first round {_verdict(sub.get('first_round'))}, "
                   f"final {_verdict(sub.get('final'))}, {sub.get('rounds_used', 0)} round(s)")
        out.extend(_checks((sub.get("final") or {}).get("checks"), "    "))
    return out


def user_labels(messages: list[dict[str, Any]], meta: dict[str, Any]) -> dict[int, str]:
    """What each user message after the request is: ``feedback, round N``, ``subtask N``, a format notice, or
    in an imported trajectory (``meta.imported``) just a ``turn``.

    An eval trial works its subtasks in one conversation: subtask k took ``rounds_used`` rounds, so
    ``rounds_used - 1`` feedback messages come before the next subtask's request. Elsewhere every user
    turn after the request that is not a format notice starts the next round.
    """
    subtasks = meta.get("subtasks") or []
    plan: list[str] = []
    for i, sub in enumerate(subtasks):
        plan += [f"feedback, subtask {sub.get('number', i + 1)} round {r}" for r in range(2, sub.get("rounds_used", 1) + 1)]
        if i + 1 < len(subtasks):
            plan.append(f"subtask {subtasks[i + 1].get('number', i + 2)}")
    labels: dict[int, str] = {}
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    round_no = 1
    for n, i in enumerate(users):
        content = str(messages[i].get("content") or "")
        if n == 0:
            labels[i] = "request"
        elif content.startswith(FORMAT_NOTICE):
            labels[i] = "format notice"
        elif meta.get("imported"):  # another framework's turn: no rounds of this project's user to count
            labels[i] = "turn"
        elif plan:
            labels[i] = plan.pop(0)
        else:
            round_no += 1
            labels[i] = f"feedback, round {round_no}"
    return labels


def _argument(name: str, value: Any, full: bool) -> str:
    if isinstance(value, str):
        text = value[:-1] if value.endswith("\n") else value  # a file's final newline would read as a blank line
        text = text if full else cut(text, 1200, 20)
        if "\n" in text:
            return f"{name}:\n{_indent(text, '      | ')}"
        return f"{name}: {text}"
    return f"{name}: {json.dumps(value, ensure_ascii=False)}"


def render_messages(record: dict[str, Any], full: bool = False) -> list[str]:
    """Every message in order, labelled; long texts cut unless ``full``."""
    messages = record.get("messages") or []
    labels = user_labels(messages, record.get("meta") or {})
    calls: dict[str, str] = {}
    out: list[str] = []
    turn = 0
    for i, msg in enumerate(messages):
        role = msg.get("role", "?")
        content = str(msg.get("content") or "")
        if role == "system":
            out += [f"── system {RULE[10:]}", content if full else cut(content, 600, 8)]
        elif role == "user":
            label = labels.get(i, "user")
            title = f"── user ({label}) "
            out += [title + RULE[len(title):], content]
        elif role == "assistant":
            turn += 1
            title = f"── assistant, turn {turn} "
            out.append(title + RULE[len(title):])
            if msg.get("reasoning_content"):
                out += ["(reasoning)", _indent(str(msg["reasoning_content"]), "  ")]
            if content:
                out.append(content)
            for call in msg.get("tool_calls") or []:
                fn = call.get("function") or {}
                call_id = call.get("id") or ""
                calls[call_id] = fn.get("name", "?")
                out.append(f"  → {fn.get('name', '?')}" + (f"   [{call_id}]" if call_id else ""))
                arguments = fn.get("arguments")
                if isinstance(arguments, dict):
                    out += [f"      {_argument(k, v, full)}" for k, v in arguments.items()]
                elif arguments is not None:
                    out.append(f"      {_argument('arguments', arguments, full)}")
        elif role == "tool":
            call_id = msg.get("tool_call_id") or ""
            title = f"── tool result: {calls.get(call_id, '?')}" + (f" [{call_id}] " if call_id else " ")
            out += [title + RULE[len(title):], content if full else cut(content, 2000, 40)]
        else:
            title = f"── {role} "
            out += [title + RULE[len(title):], content]
    return out


def render_episode(loc: Located, full: bool = False) -> str:
    """The header and every message of one episode, as ``limi show`` prints it."""
    return "\n".join([*render_header(loc), "", *render_messages(loc.record, full)]) + "\n"
