"""The agent's tools: OpenAI function schemas, and a Toolbox that runs one call and never raises for it.

    toolbox = Toolbox(workspace, sandbox)
    result = toolbox.call("read_file", {"path": "src/app.py", "start_line": 10, "end_line": 40})
    result.output        # "    10\tdef main():\n..."

``bash`` runs in the sandbox. The file tools run in this process, so they confine themselves to the
workspace: paths resolve relative to it; absolute paths elsewhere, ``..`` escapes and symbolic links
that lead outside are refused, and so is writing to a file with more than one hard link (it may be a
file from outside linked in). A bad tool name, bad arguments or a refused path come back as a result
with ``is_error`` set, worded for the model to correct itself; a broken sandbox still raises.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pipelines.agent.sandbox.base import Sandbox

MAX_READ_BYTES = 50_000
MAX_EDIT_BYTES = 10 << 20  # str_replace holds the file in memory twice
_BINARY_SNIFF = 8192
_MAX_LISTED = 10


def _function(name: str, description: str, properties: dict[str, dict], required: list[str]) -> dict:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required,
                       "additionalProperties": False}}}


_PATH = {"type": "string", "description": "File path, relative to the workspace (absolute paths must lie inside it)."}

TOOL_SCHEMAS: list[dict] = [
    _function(
        "bash",
        "Run a shell command with bash in the workspace and get back its stdout and stderr merged, and its exit "
        "code. It runs in a sandbox: no network, everything outside the workspace is read-only, and each command "
        "has a time limit. Long output is cut in the middle. Only files persist between calls: the working "
        "directory, variables and background processes do not.",
        {"command": {"type": "string", "description": "The command line, e.g. `pytest -q tests/test_io.py`."}},
        ["command"]),
    _function(
        "read_file",
        "Read a text file in the workspace, with line numbers. Give start_line and end_line (1-based, inclusive) "
        "to read part of a long file; long output is cut with a note saying where to go on.",
        {"path": _PATH,
         "start_line": {"type": "integer", "minimum": 1, "description": "First line to show (default 1)."},
         "end_line": {"type": "integer", "minimum": 1, "description": "Last line to show (default: end of file)."}},
        ["path"]),
    _function(
        "write_file",
        "Create a file in the workspace, or overwrite it, with exactly the given content. Missing parent "
        "folders are created. For a small change to an existing file prefer str_replace.",
        {"path": _PATH, "content": {"type": "string", "description": "The complete new content of the file."}},
        ["path", "content"]),
    _function(
        "str_replace",
        "Replace one occurrence of `old` with `new` in a file in the workspace. `old` must match the file "
        "exactly, whitespace and indentation included, and occur exactly once: include enough surrounding lines "
        "to make it unique.",
        {"path": _PATH,
         "old": {"type": "string", "description": "The exact text to replace; must occur exactly once."},
         "new": {"type": "string", "description": "The text to put in its place (may be empty to delete)."}},
        ["path", "old", "new"]),
    _function(
        "finish",
        "Call once the task is done, or cannot be done, with a short summary of what you changed and how you "
        "checked it. This ends your turn.",
        {"summary": {"type": "string", "description": "What you did and how you verified it."}},
        ["summary"]),
]


# ------------------------------------------------------------------ the limi tool set
# SII CLI's tools (the agent LIMI's released trajectories were recorded with), by name and argument shape. SII
# CLI descends from Gemini CLI, and the shapes follow Gemini CLI's core tool schemas of mid-2025 (its
# packages/core/src/tools: shell.ts, read-file.ts, write-file.ts, edit.ts, glob.ts, grep.ts) as its
# docs/tools pages describe them; only the tools that make sense offline are here (no web fetch or search,
# no memory). There is no finish tool: as in Gemini CLI, a turn without a tool call hands the turn back.
_ABSOLUTE = ("The absolute path of the file inside the workspace; a relative path is taken relative to the "
             "workspace root.")

LIMI_TOOL_SCHEMAS: list[dict] = [
    _function(
        "run_shell_command",
        "Executes a given shell command as `bash -c <command>` in the workspace and returns its output (stdout "
        "and stderr merged) and exit code. It runs in a sandbox without network access, with a time limit; only "
        "files persist between calls.",
        {"command": {"type": "string", "description": "Exact bash command to execute as `bash -c <command>`."},
         "description": {"type": "string", "description": "Brief description of the command for the user."},
         "directory": {"type": "string", "description": "(OPTIONAL) Directory to run the command in, relative to "
                       "the workspace root; must exist. Default: the workspace root."}},
        ["command"]),
    _function(
        "read_file",
        "Reads and returns the content of a text file in the workspace. For a long file give offset and limit to "
        "read a range of lines; a cut output says how to read on.",
        {"absolute_path": {"type": "string", "description": _ABSOLUTE},
         "offset": {"type": "integer", "minimum": 0, "description": "Optional: the 0-based line number to start "
                    "reading from. Use with limit to page through a large file."},
         "limit": {"type": "integer", "minimum": 1, "description": "Optional: the maximum number of lines to read "
                   "(default 2000)."}},
        ["absolute_path"]),
    _function(
        "write_file",
        "Writes content to a file in the workspace, creating it (and missing parent folders) or overwriting it.",
        {"file_path": {"type": "string", "description": _ABSOLUTE},
         "content": {"type": "string", "description": "The content to write to the file."}},
        ["file_path", "content"]),
    _function(
        "replace",
        "Replaces text within a file. By default replaces a single occurrence; set expected_replacements to "
        "replace several. old_string must match the file exactly, whitespace and indentation included, and occur "
        "exactly expected_replacements times: include enough context to make it unique. An empty old_string with "
        "a file that does not exist yet creates the file with new_string.",
        {"file_path": {"type": "string", "description": _ABSOLUTE},
         "old_string": {"type": "string", "description": "The exact literal text to replace."},
         "new_string": {"type": "string", "description": "The exact literal text to replace old_string with."},
         "expected_replacements": {"type": "integer", "minimum": 1, "description": "Number of replacements "
                                   "expected (default 1)."}},
        ["file_path", "old_string", "new_string"]),
    _function(
        "glob",
        "Finds files whose paths match a glob pattern (e.g. `src/**/*.py`, `*.md`), returning their absolute "
        "paths, sorted by path. The .git folder is skipped.",
        {"pattern": {"type": "string", "description": "The glob pattern to match against paths (`**` matches any "
                     "number of folders, `{a,b}` either part)."},
         "path": {"type": "string", "description": "Optional: the folder to search in (absolute, or relative to "
                  "the workspace root). Default: the workspace root."}},
        ["pattern"]),
    _function(
        "search_file_content",
        "Searches the contents of files for a regular expression (Python `re` syntax), returning each matching "
        "line with its file path and line number. The .git folder and binary files are skipped.",
        {"pattern": {"type": "string", "description": "The regular expression to search for (e.g. `def \\w+\\(`)."},
         "path": {"type": "string", "description": "Optional: the folder (or file) to search in, absolute or "
                  "relative to the workspace root. Default: the workspace root."},
         "include": {"type": "string", "description": "Optional: a glob pattern the files must match (e.g. `*.py`, "
                     "`src/**/*.{ts,tsx}`)."}},
        ["pattern"]),
]

LIMI_READ_LINES = 2000
MAX_GLOB_RESULTS = 500
MAX_SEARCH_MATCHES = 200
_MAX_SEARCH_LINE = 500

#: The tool sets an agent can be given (params: collect.tool_set, eval.tool_set, eval.models[].tool_set).
TOOL_SETS: dict[str, list[dict]] = {"default": TOOL_SCHEMAS, "limi": LIMI_TOOL_SCHEMAS}
DEFAULT_TOOL_SET = "default"


@dataclass(frozen=True)
class ToolResult:
    """The text the model gets back; ``finished`` and ``summary`` are set by the finish tool only."""

    output: str
    is_error: bool = False
    finished: bool = False
    summary: str | None = None


class ToolError(Exception):
    """A call the model got wrong; its message goes back to the model as an error result."""


class Toolbox:
    """Runs the agent's tool calls against one workspace and the sandbox that commands run in."""

    def __init__(self, workspace: Path, sandbox: Sandbox, *, tool_set: str = DEFAULT_TOOL_SET,
                 max_read_bytes: int = MAX_READ_BYTES):
        self.workspace = Path(os.path.realpath(workspace))
        sandbox_workspace = getattr(sandbox, "workspace", None)
        if sandbox_workspace is not None and Path(os.path.realpath(sandbox_workspace)) != self.workspace:
            raise ValueError(f"the sandbox works in {sandbox_workspace}, not in the workspace {self.workspace}")
        self.sandbox = sandbox
        # what the sandbox hides inside the workspace (e.g. a .dvc folder) the file tools must not reveal
        # either; hidden folders around the workspace (/home, say) are the confinement's business
        hidden = (Path(os.path.realpath(p)) for p in getattr(sandbox, "hidden_paths", ()))
        self._hidden = [p for p in hidden if self.workspace in p.parents]
        self.max_read_bytes = max_read_bytes
        if tool_set not in TOOL_SETS:
            raise ValueError(f"unknown tool set {tool_set!r}; known: {', '.join(TOOL_SETS)}")
        self.tool_set = tool_set
        self.schemas = TOOL_SETS[tool_set]
        self._parameters = {schema["function"]["name"]: schema["function"]["parameters"] for schema in self.schemas}
        self._handlers: dict[str, Callable[..., ToolResult]] = {
            "bash": self.bash, "read_file": self.read_file, "write_file": self.write_file,
            "str_replace": self.str_replace, "finish": self.finish} if tool_set == "default" else {
            "run_shell_command": self.run_shell_command, "read_file": self.read_lines,
            "write_file": self.write_to, "replace": self.replace, "glob": self.glob,
            "search_file_content": self.search_file_content}

    def call(self, name: str, arguments: dict[str, Any] | str | None) -> ToolResult:
        """Run tool ``name`` with ``arguments`` (a dict, or the model's JSON text of one).

        Unknown tools, arguments that do not fit the schema, refused paths and file-system errors come
        back as ``is_error`` results; only a failure of the sandbox itself raises.
        """
        handler = self._handlers.get(name)
        if handler is None:
            return _error(f"Unknown tool {name!r}. Available tools: {', '.join(self._handlers)}.")
        try:
            return handler(**_checked_arguments(name, self._parameters[name], arguments))
        except ToolError as exc:
            return _error(str(exc))

    def bash(self, command: str) -> ToolResult:
        """Run ``command`` in the sandbox; the output ends with the exit code (timeouts and quota are errors)."""
        if not command.strip():
            raise ToolError("bash got an empty command.")
        result = self.sandbox.run(command)
        output = result.output
        sep = "\n" if output and not output.endswith("\n") else ""
        return ToolResult(f"{output}{sep}[exit code {result.exit_code}]",
                          is_error=result.timed_out or result.quota_exceeded)

    def read_file(self, path: str, start_line: int | None = None, end_line: int | None = None) -> ToolResult:
        """Lines ``start_line``..``end_line`` of a workspace file, numbered, at most ``max_read_bytes`` of them."""
        first = start_line or 1
        if end_line is not None and end_line < first:
            raise ToolError(f"end_line ({end_line}) is before start_line ({first}).")
        real, shown = self._resolve(path)
        with _WorkspaceFile(real, shown, os.O_RDONLY) as (handle, _):
            if b"\0" in handle.peek(_BINARY_SNIFF)[:_BINARY_SNIFF]:
                size = os.fstat(handle.fileno()).st_size
                raise ToolError(f"{shown} is a binary file ({size} bytes); inspect it with bash (e.g. xxd | head).")
            shown_lines, used, last_seen, stopped_at = [], 0, 0, None
            for number, text in _lines(handle, self.max_read_bytes):
                last_seen = number
                if number < first:
                    continue
                if end_line is not None and number > end_line:
                    break
                entry = f"{number:6}\t{text}\n"
                if shown_lines and used + len(entry.encode()) > self.max_read_bytes:
                    stopped_at = number
                    break
                shown_lines.append(entry)
                used += len(entry.encode())
        if last_seen == 0:
            return ToolResult(f"[{shown} is empty]")
        if first > last_seen:
            raise ToolError(f"start_line {first} is past the end of {shown}, which has {last_seen} lines.")
        text = "".join(shown_lines)
        if stopped_at is not None:
            text += (f"[output cut at {self.max_read_bytes} bytes; read on with start_line={stopped_at}]")
        elif end_line is not None and end_line > last_seen:
            text += f"[end of file: {shown} has {last_seen} lines]"
        return ToolResult(text)

    def write_file(self, path: str, content: str) -> ToolResult:
        """Create or overwrite a workspace file with ``content`` (UTF-8), creating parent folders."""
        real, shown = self._resolve(path)
        data = _encode(content, shown)
        try:
            real.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ToolError(f"cannot create the folder for {shown}: {exc.strerror}.") from None
        with _WorkspaceFile(real, shown, os.O_WRONLY | os.O_CREAT, writing=True) as (handle, _):
            handle.truncate(0)
            handle.write(data)
        lines = content.count("\n") + (1 if content and not content.endswith("\n") else 0)
        return ToolResult(f"Wrote {len(data)} bytes ({lines} lines) to {shown}.")

    def str_replace(self, path: str, old: str, new: str) -> ToolResult:
        """Replace the one occurrence of ``old`` in a workspace file with ``new``; zero or several is an error."""
        if not old:
            raise ToolError("old is empty; to write a whole file use write_file.")
        if old == new:
            raise ToolError("old and new are identical: nothing would change.")
        real, shown = self._resolve(path)
        with _WorkspaceFile(real, shown, os.O_RDWR, writing=True) as (handle, st):
            if st.st_size > MAX_EDIT_BYTES:
                raise ToolError(f"{shown} is {st.st_size} bytes, too large for str_replace; edit it with bash.")
            try:
                text = handle.read().decode("utf-8")
            except UnicodeDecodeError:
                raise ToolError(f"{shown} is not UTF-8 text; edit it with bash.") from None
            at = _occurrences(text, old)
            if not at:
                raise ToolError(f"old was not found in {shown}.{_near_miss_hint(text, old)} It must match exactly, "
                                "whitespace and indentation included: read_file the region and copy it.")
            if len(at) > 1:
                where = ", ".join(str(text.count("\n", 0, i) + 1) for i in at[:_MAX_LISTED])
                more = ", ..." if len(at) > _MAX_LISTED else ""
                raise ToolError(f"old occurs {len(at)} times in {shown} (starting on lines {where}{more}); include "
                                "more surrounding lines so that it matches exactly once.")
            updated = text[:at[0]] + new + text[at[0] + len(old):]
            handle.seek(0)
            handle.write(_encode(updated, shown))
            handle.truncate()
        first = text.count("\n", 0, at[0]) + 1
        return ToolResult(f"Replaced 1 occurrence in {shown} at line {first}. The lines around it now read:\n"
                          + _numbered(updated, first - 2, first + new.count("\n") + 2))

    def finish(self, summary: str) -> ToolResult:
        """End the agent's turn with ``summary``."""
        return ToolResult("Finished.", finished=True, summary=summary)

    # -------------------------------------------------------------- the limi set (SII / Gemini CLI shapes)
    def run_shell_command(self, command: str, description: str | None = None,
                          directory: str | None = None) -> ToolResult:
        """Run ``command`` in the sandbox (in ``directory``, a workspace folder, when given); ``description``
        is for a person watching and changes nothing."""
        if not command.strip():
            raise ToolError("run_shell_command got an empty command.")
        shown_dir = "(root)"
        script = command
        if directory is not None:
            real, shown_dir = self._resolve(directory)
            if not real.is_dir() or real.is_symlink():
                raise ToolError(f"directory {shown_dir} is not a folder in the workspace.")
            script = f"cd {shlex.quote(str(real))} || exit 1\n{command}"
        result = self.sandbox.run(script)
        output = result.output[:-1] if result.output.endswith("\n") else result.output
        return ToolResult(f"Command: {command}\nDirectory: {shown_dir}\nOutput: {output or '(empty)'}\n"
                          f"Exit Code: {result.exit_code}",
                          is_error=result.timed_out or result.quota_exceeded)

    def read_lines(self, absolute_path: str, offset: int | None = None, limit: int | None = None) -> ToolResult:
        """Lines ``offset`` (0-based) to ``offset + limit`` of a workspace file, as they are (no numbers), at most
        ``max_read_bytes``; a note before them says which lines a cut output shows and how to read on."""
        first = offset or 0
        count = limit or LIMI_READ_LINES
        real, shown = self._resolve(absolute_path)
        with _WorkspaceFile(real, shown, os.O_RDONLY) as (handle, _):
            if b"\0" in handle.peek(_BINARY_SNIFF)[:_BINARY_SNIFF]:
                size = os.fstat(handle.fileno()).st_size
                raise ToolError(f"{shown} is a binary file ({size} bytes); inspect it with run_shell_command "
                                "(e.g. xxd | head).")
            kept, used, total = [], 0, 0
            full = True
            for number, text in _lines(handle, self.max_read_bytes):
                total = number
                if number <= first or not full:
                    continue
                entry = text + "\n"
                if len(kept) >= count or (kept and used + len(entry.encode()) > self.max_read_bytes):
                    full = False
                    continue
                kept.append(entry)
                used += len(entry.encode())
        if total == 0:
            return ToolResult("")
        if first >= total:
            raise ToolError(f"offset {first} is past the end of {shown}, which has {total} lines.")
        text = "".join(kept)
        if first > 0 or first + len(kept) < total:
            end = first + len(kept)
            note = f"[File content truncated: showing lines {first + 1}-{end} of {total} total lines."
            note += f" Use offset={end} to read on.]\n" if end < total else "]\n"
            text = note + text
        return ToolResult(text)

    def write_to(self, file_path: str, content: str) -> ToolResult:
        """:meth:`write_file` under the limi set's argument name."""
        return self.write_file(file_path, content)

    def replace(self, file_path: str, old_string: str, new_string: str,
                expected_replacements: int | None = None) -> ToolResult:
        """Replace every occurrence of ``old_string`` when there are exactly ``expected_replacements`` (default 1)
        of them; an empty ``old_string`` creates a file that does not exist yet."""
        expected = expected_replacements or 1
        real, shown = self._resolve(file_path)
        if not old_string:
            if os.path.lexists(real):
                raise ToolError(f"old_string is empty but {shown} exists; to rewrite it use write_file.")
            self.write_file(file_path, new_string)
            return ToolResult(f"Created new file {shown} with the given content.")
        if old_string == new_string:
            raise ToolError("old_string and new_string are identical: nothing would change.")
        with _WorkspaceFile(real, shown, os.O_RDWR, writing=True) as (handle, st):
            if st.st_size > MAX_EDIT_BYTES:
                raise ToolError(f"{shown} is {st.st_size} bytes, too large for replace; edit it with "
                                "run_shell_command.")
            try:
                text = handle.read().decode("utf-8")
            except UnicodeDecodeError:
                raise ToolError(f"{shown} is not UTF-8 text; edit it with run_shell_command.") from None
            at = _occurrences(text, old_string)
            if not at:
                raise ToolError(f"0 occurrences of old_string found in {shown}.{_near_miss_hint(text, old_string)} "
                                "It must match exactly, whitespace and indentation included: read_file the region "
                                "and copy it.")
            if len(at) != expected:
                raise ToolError(f"expected {expected} occurrence{'s' if expected > 1 else ''} of old_string but "
                                f"found {len(at)} in {shown}; include more context to make it unique, or set "
                                "expected_replacements.")
            handle.seek(0)
            handle.write(_encode(text.replace(old_string, new_string), shown))
            handle.truncate()
        return ToolResult(f"Successfully modified file: {shown} ({len(at)} replacement{'s' if len(at) > 1 else ''}).")

    def glob(self, pattern: str, path: str | None = None) -> ToolResult:
        """Workspace files under ``path`` whose path relative to it matches ``pattern``, as absolute paths."""
        base, shown = self._folder(path)
        matcher = _glob_regex(pattern)
        found = sorted(str(base / rel) for rel in self._walk(base) if matcher.fullmatch(rel))
        if not found:
            return ToolResult(f'No files found matching pattern "{pattern}" within {shown}.')
        more = f"\n[{len(found) - MAX_GLOB_RESULTS} more not shown; narrow the pattern]" \
            if len(found) > MAX_GLOB_RESULTS else ""
        return ToolResult(f'Found {len(found)} file(s) matching "{pattern}" within {shown}, sorted by path:\n'
                          + "\n".join(found[:MAX_GLOB_RESULTS]) + more)

    def search_file_content(self, pattern: str, path: str | None = None, include: str | None = None) -> ToolResult:
        """Lines matching the regular expression ``pattern`` in the workspace files under ``path`` (a folder or
        one file) that match the glob ``include``, grouped by file."""
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ToolError(f"pattern is not a valid regular expression: {exc}.") from None
        real, shown = self._resolve(path or ".")
        if real.is_file() and not real.is_symlink():
            base, files = real.parent, [real.name]
        else:
            base, shown = self._folder(path)
            files = self._walk(base)
        wanted = _glob_regex(include) if include else None
        by_file: dict[str, list[str]] = {}
        matches = 0
        for rel in files:
            if matches >= MAX_SEARCH_MATCHES:
                break
            # an include without "/" (``*.py``) matches a file's name in any folder
            if wanted and not (wanted.fullmatch(rel) or ("/" not in include
                                                         and wanted.fullmatch(rel.rsplit("/", 1)[-1]))):
                continue
            name = os.path.relpath(base / rel, self.workspace)
            try:
                with _WorkspaceFile(base / rel, name, os.O_RDONLY) as (handle, st):
                    if st.st_size > MAX_EDIT_BYTES or b"\0" in handle.peek(_BINARY_SNIFF)[:_BINARY_SNIFF]:
                        continue
                    for number, text in _lines(handle, _MAX_SEARCH_LINE):
                        if regex.search(text):
                            by_file.setdefault(name, []).append(f"L{number}: {text}")
                            matches += 1
                            if matches >= MAX_SEARCH_MATCHES:
                                break
            except ToolError:
                continue  # unreadable, not a regular file: not searched
        where = f'"{pattern}" in {shown}' + (f' (filter: "{include}")' if include else "")
        if not matches:
            return ToolResult(f"No matches found for pattern {where}.")
        cut = f"\n[stopped at {MAX_SEARCH_MATCHES} matches; narrow the search]" if matches >= MAX_SEARCH_MATCHES else ""
        body = "".join(f"---\nFile: {name}\n" + "\n".join(lines) + "\n" for name, lines in by_file.items())
        return ToolResult(f"Found {matches} match{'es' if matches > 1 else ''} for pattern {where}:\n{body}---{cut}")

    def _folder(self, path: str | None) -> tuple[Path, str]:
        """A workspace folder (default: the root) and the name to show for it."""
        real, shown = self._resolve(path or ".")
        if not real.is_dir():
            raise ToolError(f"{shown} is not a folder in the workspace.")
        return real, shown

    def _walk(self, base: Path) -> list[str]:
        """Paths (relative to ``base``, ``/``-separated, sorted) of the regular files below ``base``: symbolic
        links are not followed, and ``.git`` and what the sandbox hides are left out."""
        found = []
        for folder, dirs, files in os.walk(base, followlinks=False):
            here = Path(folder)
            dirs[:] = sorted(d for d in dirs if d != ".git" and not (here / d).is_symlink()
                             and not any(_within(here / d, hidden) for hidden in self._hidden))
            for name in files:
                full = here / name
                if full.is_symlink() or any(_within(full, hidden) for hidden in self._hidden):
                    continue
                found.append(full.relative_to(base).as_posix())
        return sorted(found)

    def _resolve(self, path: str) -> tuple[Path, str]:
        """The real path ``path`` names inside the workspace, and the name to show; refuses anything outside."""
        if not path or "\0" in path:
            raise ToolError("path must be a non-empty file path.")
        given = Path(path)
        candidate = given if given.is_absolute() else self.workspace / given
        real = Path(os.path.realpath(candidate))  # follows every symlink, dangling ones included
        if _within(real, self.workspace):
            shown = os.path.relpath(real, self.workspace)
            if any(_within(real, hidden) for hidden in self._hidden):
                raise ToolError(f"{shown} is hidden from the agent.")
            return real, shown
        if _within(Path(os.path.normpath(candidate)), self.workspace):
            raise ToolError(f"{path} leads through a symbolic link to {real}, outside the workspace "
                            f"{self.workspace}; file tools only work inside the workspace.")
        raise ToolError(f"{path} is outside the workspace {self.workspace}; give a path inside it, "
                        "best relative to it.")


class _WorkspaceFile:
    """A workspace file opened without following a final symlink, checked to be a plain, singly linked file."""

    def __init__(self, real: Path, shown: str, flags: int, *, writing: bool = False):
        self.real, self.shown, self.flags, self.writing = real, shown, flags, writing
        self.handle = None

    def __enter__(self):
        # O_NONBLOCK: opening a FIFO planted in the workspace must not hang this process
        flags = self.flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.real, flags, 0o644)
        except OSError as exc:
            raise ToolError(f"cannot open {self.shown}: {exc.strerror}.") from None
        st = os.fstat(fd)
        problem = None
        if stat.S_ISDIR(st.st_mode):
            problem = f"{self.shown} is a folder; list it with bash (e.g. ls -la {self.shown})."
        elif not stat.S_ISREG(st.st_mode):
            problem = f"{self.shown} is not a regular file."
        elif self.writing and st.st_nlink > 1:
            problem = (f"{self.shown} has {st.st_nlink} hard links, so writing it could change a file outside the "
                       f"workspace; replace it with a copy first (bash: cp {self.shown} x && mv x {self.shown}).")
        if problem:
            os.close(fd)
            raise ToolError(problem)
        os.set_blocking(fd, True)
        mode = {os.O_RDONLY: "rb", os.O_WRONLY: "wb", os.O_RDWR: "r+b"}[self.flags & os.O_ACCMODE]
        self.handle = os.fdopen(fd, mode)
        return self.handle, st

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            self.handle.close()
        except OSError as close_error:
            exc = exc or close_error  # a failed flush is a failed write
        if isinstance(exc, OSError):  # e.g. disk full: the model's problem to hear about, not a crash
            action = "write" if self.writing else "read"
            raise ToolError(f"cannot {action} {self.shown}: {exc.strerror or exc}.") from None


def well_formed_call(call: dict[str, Any], tools: list[dict[str, Any]]) -> bool:
    """True when a parsed tool ``call`` (``{"function": {"name", "arguments"}}``) names one of ``tools`` and its
    arguments fit that tool's schema, as :meth:`Toolbox.call` checks them before running anything. What the
    call then does (a path refused, a command that fails) is not part of it."""
    function = call.get("function") or {}
    schemas = {tool["function"]["name"]: tool["function"]["parameters"] for tool in tools}
    name = function.get("name")
    if name not in schemas:
        return False
    try:
        _checked_arguments(name, schemas[name], function.get("arguments"))
    except ToolError:
        return False
    return True


def _checked_arguments(name: str, parameters: dict, arguments: Any) -> dict[str, Any]:
    """``arguments`` checked against the tool's JSON schema; raises ToolError saying how to call it instead."""
    usage = _usage(name, parameters)
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        arguments = {}
    elif isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            raise ToolError(f"the arguments for {name} are not valid JSON ({exc.msg}, at character {exc.pos}); "
                            f"call it as {usage}.") from None
    if not isinstance(arguments, dict):
        raise ToolError(f"the arguments for {name} must be a JSON object, got {_json_type(arguments)}; "
                        f"call it as {usage}.")
    properties, required = parameters["properties"], parameters["required"]
    unknown = [key for key in arguments if key not in properties]
    if unknown:
        raise ToolError(f"{name} has no argument {', '.join(map(repr, unknown))}; call it as {usage}.")
    checked = {}
    for key, value in arguments.items():
        if value is None and key not in required:
            continue  # models send null for an optional argument they mean to leave out
        checked[key] = _checked_value(name, key, properties[key], value, usage)
    missing = [key for key in required if key not in checked]
    if missing:
        raise ToolError(f"{name} is missing the required argument {', '.join(map(repr, missing))}; "
                        f"call it as {usage}.")
    return checked


def _checked_value(tool: str, key: str, schema: dict, value: Any, usage: str) -> Any:
    if schema["type"] == "string" and isinstance(value, str):
        return value
    if schema["type"] == "integer" and not isinstance(value, bool):
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON does not tell 3 from 3.0
        if isinstance(value, int):
            if value < schema.get("minimum", value):
                raise ToolError(f"{tool} argument {key!r} must be at least {schema['minimum']}, got {value}.")
            return value
    wanted = "a string" if schema["type"] == "string" else "an integer"
    raise ToolError(f"{tool} argument {key!r} must be {wanted}, got {_json_type(value)} {_short(value)}; "
                    f"call it as {usage}.")


def _usage(name: str, parameters: dict) -> str:
    """e.g. ``read_file(path: string, start_line?: integer, end_line?: integer)``."""
    required = parameters["required"]
    params = ", ".join(f"{key}{'' if key in required else '?'}: {spec['type']}"
                       for key, spec in parameters["properties"].items())
    return f"{name}({params})"


def _glob_regex(pattern: str) -> re.Pattern:
    """A glob as a regular expression over ``/``-separated relative paths: ``**/`` any folders (none too),
    ``**`` anything, ``*`` and ``?`` within one name, ``[...]`` a class, ``{a,b}`` either part."""
    out, i, depth = [], 0, 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and "]" in pattern[i + 2:]:
            end = pattern.index("]", i + 2)  # a "]" right after "[" (or "[!") belongs to the class
            body = pattern[i + 1:end]
            negate = body[0] in "!^"
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\").replace("[", "\\[") + "]")
            i = end + 1
            continue
        elif c == "{":
            out.append("(?:")
            depth += 1
        elif c == "}" and depth:
            out.append(")")
            depth -= 1
        elif c == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    if depth:
        raise ToolError(f"the glob {pattern!r} has an unclosed '{{'.")
    return re.compile("".join(out), re.DOTALL)


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
             dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _error(message: str) -> ToolResult:
    return ToolResult(f"Error: {message}", is_error=True)


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _encode(text: str, shown: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ToolError(f"the content for {shown} is not valid Unicode text.") from None


def _lines(handle, max_line: int):
    """(number, text) for each line; a line longer than ``max_line`` bytes is cut, the rest skipped unread."""
    number = 0
    while raw := handle.readline(max_line):
        number += 1
        part, skipped = raw, 0
        while not part.endswith(b"\n"):
            part = handle.readline(max_line)
            if not part:
                break
            skipped += len(part)
        text = raw.rstrip(b"\n").decode("utf-8", errors="replace")
        yield number, (f"{text} [... {skipped} more bytes on this line ...]" if skipped else text)


def _occurrences(text: str, old: str) -> list[int]:
    """Start offsets of the non-overlapping occurrences of ``old`` (what a replace would see)."""
    found, at = [], text.find(old)
    while at != -1:
        found.append(at)
        at = text.find(old, at + len(old))
    return found


def _near_miss_hint(text: str, old: str) -> str:
    """A hint for the usual reasons an almost-right ``old`` fails to match."""
    if "\r\n" in text and "\n" in old and "\r\n" not in old and old.replace("\n", "\r\n") in text:
        return " The file uses Windows line endings (\\r\\n)."
    if old.strip() and old.strip() in text:
        return " It does match once leading and trailing whitespace are dropped."
    return ""


def _numbered(text: str, first: int, last: int) -> str:
    lines = text.splitlines()
    first, last = max(first, 1), min(last, len(lines))
    return "".join(f"{n:6}\t{lines[n - 1]}\n" for n in range(first, last + 1))
