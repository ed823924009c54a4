"""The ``agencybench`` suite: AgencyBench v1 task files; each "Subtask k" block of a file's ``query`` is a
round, checked by the judge model against that subtask's success criteria.

    tasks = load_agencybench("/data/agencybench-v1")
"""

from __future__ import annotations

import re
import textwrap
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.core.errors import UserError
from pipelines.core.schema import VerifierSpec, WorkspaceSpec
from pipelines.core.taxonomy import CATEGORY_DOMAIN
from pipelines.core.paths import relative_to_root
from pipelines.evaluation.suites.common import EvalTask, Subtask, read_json_object
from pipelines.evaluation.suites.execution import execution_requirements, named_page

_SUBTASK_HEADER = re.compile(r"^[ \t]*Subtask[ \t]*(\d+)\b[ \t]*[:\-\u2014\u2013.]*[ \t]*(.*)$", re.M | re.I)
# AgencyBench puts a subtask's reference answer in its header; it is kept for the judge, never shown.
_HIDDEN_REFERENCE = re.compile(r"^(ground[ _]truth|original [\w ]*?id)[ \t]*:[ \t]*(.*)$", re.I)
_CRITERIA_MARKER = re.compile(r"^[ \t]*(success criteria|acceptance criteria|expected)[ \t]*:[ \t]*", re.M | re.I)
_CRITERIA_HEADING = re.compile(r"^[ \t]*(?:success|acceptance) criteria[ \t]*:?[ \t]*$", re.I)
_BULLET = re.compile(r"^([ \t]*)(-{1,2}|[*\u2022]|\d+[.)])[ \t]+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
# a comparison whose value is missing, as in task8's "until the loss is smaller than ."
_BLANK_VALUE = re.compile(r"\b(?:than|at (?:most|least)|(?:is|be|falls?|drops?|stays?|remains?|goes?) "
                          r"(?:below|under|above|over))[ \t]*[.,;:]?[ \t]*$", re.I | re.M)

#: seconds for one requirement checked by execution (a build, a page load) in the sandbox
EXECUTION_TIMEOUT_S = 120.0
#: AgencyBench's own category labels mapped onto the taxonomy, first matching keyword wins.
AGENCYBENCH_CATEGORY_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("frontend_development", ("web frontend", "html", "css")),
    ("llm_development", ("llm",)),
    ("research", ("research", "fact-based", "discovery", "scientific")),
    ("data_analysis", ("statistic", "metric", "subsampling", "preprocessing", "acquisition")),
    ("backend_development", ("database", "authentication", "persistence", "concurrency", "distributed", "crud",
                             "indexing", "fault tolerance", "self-repair")),
    ("algorithm", ("algorithm", "planning", "game logic", "heuristic", "minimax")),
    ("build_deploy_development", ("cleanup", "deploy", "build", "packaging")),
    ("ui_development", ("user interface", "terminal ui", "rendering")),
)


def agencybench_category(label: str) -> str:
    """The taxonomy category for one AgencyBench category label (``application_development`` when none fits)."""
    text = label.lower()
    for category, keywords in AGENCYBENCH_CATEGORY_KEYWORDS:
        if any(word in text for word in keywords):
            return category
    return "application_development"


def load_agencybench(directory: Path | str, *, pass_threshold: float = 1.0) -> list[EvalTask]:
    """AgencyBench v1 tasks from ``directory``: the JSON files directly in it and in its sub-folders
    (``task1/Task1_....json``; ``workspace/`` folders are the tasks' files, not tasks).

    Each "Subtask k" block of a file's ``query`` becomes round k, checked by a ``rubric`` verifier whose
    criteria are that subtask's success criteria (its "Success Criteria:", "Acceptance Criteria:" or
    "Expected:" paragraph; failing those, its bullet points, or the request itself), plus its hidden
    reference answer and any criteria stated for the whole project. Where a subtask says how to build its
    program (a "Run:" block with ``make``, ``g++``, ``javac``...) or the task is an HTML page, that is a
    requirement checked by execution in the sandbox, a command of the verifier after the criteria
    (:mod:`pipelines.evaluation.suites.execution`). Text before the first subtask, and
    general notes after the last one, go with round 1. A task's ``workspace/`` folder, if any, is its
    starting workspace.

    A file with blank or missing fields (metadata, categories, a subtask count that does not match the
    text, a blank threshold, an empty subtask) loads with one ``UserWarning`` naming the file and each
    gap, also kept in ``provenance["warnings"]``. A file that cannot be used at all (unreadable, not a
    JSON object, no query text) raises UserError naming it.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: AgencyBench directory not found")
    files = [(path, False) for path in sorted(directory.glob("*.json"), key=_natural_key)]
    for folder in sorted((p for p in directory.iterdir() if p.is_dir()), key=_natural_key):
        files.extend((path, True) for path in sorted(folder.glob("*.json"), key=_natural_key))
    if not files:
        raise UserError(f"{directory}: no AgencyBench task files (*.json, or */*.json) found")
    tasks, seen = [], {}
    for path, own_folder in files:
        task = _agencybench_task(path, pass_threshold, own_folder)
        if task.id in seen:
            raise UserError(f"{path}: task id {task.id!r} is also the id of {seen[task.id]}; rename one of them")
        seen[task.id] = path
        tasks.append(task)
    return tasks


def _natural_key(path: Path) -> list[Any]:
    """task2 before task10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


@dataclass
class _Block:
    number: int
    header: str
    body: str


def _agencybench_task(path: Path, pass_threshold: float, own_folder: bool) -> EvalTask:
    data = read_json_object(path)
    gaps: list[str] = []
    text = data.get("query")
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"{path}: field query is missing or blank; an AgencyBench task needs its query text")
    metadata, labels = _metadata(data, gaps)
    preamble, blocks = _blocks(path, text, metadata, labels, gaps)
    epilogue = _detach_epilogue(blocks[-1])
    shared = _heading_criteria(preamble) + _heading_criteria(epilogue)
    page = named_page(text)
    # the page check starts with the subtask that names the page (the project text counts as subtask 1's)
    page_from = next((i for i, b in enumerate(blocks) if page in b.header + b.body), 0) if page else 0
    subtasks = []
    for index, block in enumerate(blocks):
        request, criteria, requirements, block_gaps = _subtask_parts(block)
        gaps.extend(f"subtask {block.number}: {gap}" for gap in block_gaps)
        if index == 0:  # the project's general text goes with the first request, in the order written
            request = "\n\n".join(part.strip() for part in (preamble, request, epilogue) if part.strip())
        executed = execution_requirements(block.body, page=page if index >= page_from else None)
        # the shared criteria are stated in the project text the agent reads: their own words are public;
        # requirements run criteria first, then the commands checked by execution
        subtasks.append(Subtask(request, VerifierSpec(
            kind="rubric", criteria=criteria + shared, commands=[e.command for e in executed],
            requirements=requirements + shared + [e.requirement for e in executed],
            timeout_s=EXECUTION_TIMEOUT_S if executed else 60.0, pass_threshold=pass_threshold)))
    mapped = [agencybench_category(label) for label in labels if label]
    category = Counter(mapped).most_common(1)[0][0] if mapped else "application_development"
    workspace_dir = path.parent / "workspace"
    workspace = (WorkspaceSpec(dir=relative_to_root(workspace_dir))
                 if own_folder and workspace_dir.is_dir() else WorkspaceSpec())
    if gaps:
        warnings.warn(f"{path}: loaded with gaps: " + "; ".join(gaps), UserWarning, stacklevel=3)
    return EvalTask(id=f"agencybench-{_slug(path)}", suite="agencybench", domain=CATEGORY_DOMAIN[category],
                    category=category, subtasks=subtasks, workspace=workspace,
                    provenance={"source": "AgencyBench v1", "file": str(path), "title": path.stem,
                                "agencybench_categories": labels, "warnings": gaps})


def _metadata(data: dict[str, Any], gaps: list[str]) -> tuple[dict[str, Any], list[str]]:
    """(the file's metadata, its category labels), a gap noted for each that is missing or blank."""
    metadata = data.get("metadata")
    if not isinstance(metadata, dict):
        gaps.append("field metadata is missing")
        metadata = {}
    labels = metadata.get("categories")
    if not isinstance(labels, list) or not labels:
        gaps.append("field metadata.categories is missing or empty")
        labels = []
    labels = [str(label).strip() for label in labels]
    if any(not label for label in labels):
        gaps.append("field metadata.categories has blank entries")
    return metadata, labels


def _blocks(path: Path, text: str, metadata: dict[str, Any], labels: list[str],
            gaps: list[str]) -> tuple[str, list[_Block]]:
    """(text before the first subtask, the non-blank subtask blocks), gaps noted where the text and the
    metadata disagree; UserError when every subtask is blank."""
    preamble, blocks = _split_subtasks(text)
    if not blocks:
        gaps.append('no "Subtask k" headings in the query; it is loaded as one round')
        preamble, blocks = "", [_Block(1, "", text)]
    for block in [b for b in blocks if not b.body.strip() and not b.header.strip()]:
        gaps.append(f"subtask {block.number} is blank and was left out")
        blocks.remove(block)
    if not blocks:
        raise UserError(f"{path}: every subtask in the query is blank; nothing to evaluate")
    numbers = [b.number for b in blocks]
    if numbers != list(range(1, len(blocks) + 1)):
        gaps.append(f"subtask headings are numbered {numbers}, not 1..{len(blocks)}")
    count = metadata.get("subtask_count")
    if count in (None, ""):
        gaps.append("field metadata.subtask_count is missing or blank")
    elif not isinstance(count, int) or count != len(blocks):
        gaps.append(f"metadata.subtask_count is {count!r} but the query has {len(blocks)} subtasks")
    if labels and len(labels) != len(blocks):
        gaps.append(f"metadata.categories has {len(labels)} entries for {len(blocks)} subtasks")
    return preamble, blocks


def _detach_epilogue(last: _Block) -> str:
    """Notes after the last subtask's criteria belong to the whole project: cut from ``last``, returned."""
    marker = list(_CRITERIA_MARKER.finditer(last.body))
    if not marker:
        return ""
    end = _PARAGRAPH_BREAK.search(last.body, _skip_space(last.body, marker[-1].end()))
    if not end or not last.body[end.end():].strip():
        return ""
    epilogue = last.body[end.end():].strip()
    last.body = last.body[:end.start()]
    return epilogue


def _slug(path: Path) -> str:
    """``task<N>`` from the file or folder name, else the file name made safe for an id."""
    match = re.match(r"(?i)task[ _-]*(\d+)", path.stem) or re.match(r"(?i)task[ _-]*(\d+)", path.parent.name)
    slug = f"task{match.group(1)}" if match else re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-")
    return slug or "task"


def _split_subtasks(text: str) -> tuple[str, list[_Block]]:
    """(text before the first subtask, the subtask blocks in order)."""
    heads = list(_SUBTASK_HEADER.finditer(text))
    if not heads:
        return text, []
    blocks = []
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        blocks.append(_Block(int(head.group(1)), head.group(2).strip(), text[head.end():end]))
    return text[:heads[0].start()], blocks


def _subtask_parts(block: _Block) -> tuple[str, list[str], list[str], list[str]]:
    """(the request shown to the agent, the criteria, their public sentences, the gaps found) for one block.

    A criterion built from the hidden reference answer gets a sentence that names no answer; criteria
    stated in the request are public in their own words.
    """
    gaps: list[str] = []
    criteria: list[str] = []
    public: list[str] = []
    title = block.header
    hidden = _HIDDEN_REFERENCE.match(title)
    if hidden:
        title = ""
        label, value = hidden.group(1).strip(), hidden.group(2).strip()
        if value:
            noun = "dataset identified" if "dataset" in label.lower() else "final answer"
            criteria.append(f"The {noun} is {value} (the reference {label}).")
            public.append(f"The {noun} reported for this subtask is correct.")
        else:
            gaps.append(f"blank {label}")
    body = textwrap.dedent(block.body).strip()
    heading = f"Subtask {block.number}" + (f": {title}" if title else "")
    request = f"{heading}\n{body}".strip()
    if not body:
        gaps.append("no request text")
    for blank in _BLANK_VALUE.finditer(body):
        line = body[body.rfind("\n", 0, blank.start()) + 1:blank.end()].strip()
        gaps.append(f"blank threshold or value ({line!r})")

    marker = list(_CRITERIA_MARKER.finditer(body))
    stated: list[str] = []
    if marker:
        start = _skip_space(body, marker[-1].end())
        end = _PARAGRAPH_BREAK.search(body, start)
        stated = _items(body[start:end.start() if end else len(body)])
        if not stated:
            gaps.append(f"blank {marker[-1].group(1).strip().lower()}")
    if not stated:
        stated = _items(body, bullets_only=True)
    if not stated and not criteria:  # a hidden reference answer is criterion enough for a question
        stated = [f"The work does what this subtask asks: {' '.join((body or title).split())}"]
    return request, criteria + stated, public + stated, gaps


def _skip_space(text: str, at: int) -> int:
    """The first position at or after ``at`` that is not whitespace."""
    return len(text) - len(text[at:].lstrip()) if text[at:].strip() else len(text)


def _items(text: str, *, bullets_only: bool = False) -> list[str]:
    """Criteria from a paragraph: one per bullet, or the prose as one.

    Sub-bullets (indented deeper than the first bullet, or marked ``--``) join the bullet above them,
    so "Input format: each record includes" keeps the list that says what it includes.
    """
    items: list[str] = []
    prose: list[str] = []
    base_indent: int | None = None
    subs = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        bullet = _BULLET.match(line)
        if bullet:
            indent = len(bullet.group(1).expandtabs(4))
            base_indent = indent if base_indent is None else base_indent
            content = line[bullet.end():].strip()
            if items and (indent > base_indent or bullet.group(2) == "--"):
                if subs:
                    separator = " " if items[-1].endswith((".", ";")) else "; "
                else:
                    separator = " " if items[-1].endswith(":") else ": "
                items[-1] += separator + content
                subs += 1
            else:
                items.append(content)
                subs = 0
        elif items and line[:1] in " \t":
            items[-1] += " " + line.strip()
        elif not items:
            prose.append(line.strip())
        elif not bullets_only:
            items.append(line.strip())
            subs = 0
    lead = [" ".join(prose)] if prose and not bullets_only else []
    return lead + [item for item in items if item]


def _heading_criteria(context: str) -> list[str]:
    """Bullets under an "Acceptance Criteria" or "Success Criteria" heading in the general text."""
    lines = context.splitlines()
    found: list[str] = []
    for i, line in enumerate(lines):
        if _CRITERIA_HEADING.match(line):
            for follow in lines[i + 1:]:
                bullet = _BULLET.match(follow)
                if not bullet:
                    break
                found.append(follow[bullet.end():].strip())
    return [item for item in found if item]
