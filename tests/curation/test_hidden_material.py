"""Hidden material in training samples: a builtin task's solution files and check commands, gold patches."""

import json

import pytest

from pipelines.curation.config import DecontamParams
from pipelines.curation.decontam import HiddenIndex, hidden_material, verifier_hidden
from pipelines.curation.funnel import load_samples, step_hidden_material
from pipelines.curation.minhash import normalize_text
from pipelines.core.schema import VerifierSpec
from tests.curation.test_funnel import record, text

# 30 words; any 13 in a row are the answer, 12 in a row are not enough
SOLUTION = ("def settle_ledger(entries):\n"
            "    # walk the ledger oldest first and carry each overdraft into the following month's opening\n"
            "    balance = opening_balance_for(entries[0].month) if entries else zero_amount()\n"
            "    return balance\n")
SOLUTION_WORDS = normalize_text(SOLUTION).split()
CHECK = ("python3 - <<'EOF'\nfrom ledger import settle_ledger\n"
         "assert settle_ledger(sample_entries('march')) == Amount('1204.17'), 'march must carry february overdraft'\n"
         "EOF")


@pytest.fixture
def builtin_root(tmp_path, monkeypatch):
    """A project root whose builtin suite is one hand-built task with a solution file and a check command."""
    folder = tmp_path / "data" / "tasks" / "builtin" / "ledger-carry"
    (folder / "workspace").mkdir(parents=True)
    (folder / "workspace" / ".keep").write_text("")
    (folder / "solution" / "1").mkdir(parents=True)
    (folder / "solution" / "1" / "ledger.py").write_text(SOLUTION)
    (folder / "task.json").write_text(json.dumps({
        "id": "ledger-carry", "domain": "software", "category": "codebase_debugging",
        "subtasks": [{"query": "Carry overdrafts into the next month in ledger.py.",
                      "verifier": {"kind": "tests", "commands": [CHECK]}}]}))
    monkeypatch.setenv("LIMI_ROOT", str(tmp_path))
    return tmp_path


def writes(task_id: str, seed: int, content: str) -> dict:
    """A trajectory whose tool call writes ``content`` into a file."""
    return record(task_id, text(seed), text(seed + 1), arguments={"path": "ledger.py", "content": content})


def dropped(tmp_path, records, index: HiddenIndex) -> dict[str, tuple[str | None, str]]:
    src = tmp_path / "episodes.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    samples = load_samples([src], tmp_path)
    step_hidden_material(samples, index)
    return {s.task_id: (s.reason, s.detail) for s in samples}


def test_solution_words_and_check_text_in_a_trajectory_are_hidden_material(builtin_root, tmp_path):
    pieces = hidden_material(DecontamParams(builtin=True, easy=False, humaneval=False), builtin_root)
    assert {(name, kind) for name, kind, _ in pieces} == {
        ("builtin:ledger-carry", "subtask 1 check 1"), ("builtin:ledger-carry", "solution file solution/1/ledger.py")}
    index = HiddenIndex(pieces, ngram=13)
    filler = "please tidy the module and keep its public names"
    thirteen = " ".join(SOLUTION_WORDS[5:18])
    twelve = " ".join(SOLUTION_WORDS[5:17])
    quoted = record("quotes-check", text(11), text(12), body="The grader runs:\n" + CHECK.split("\n", 2)[2])
    records = [writes("thirteen", 1, f"{filler}\n{thirteen}\n{filler}"),
               writes("twelve", 3, f"{filler}\n{twelve}\n{filler}"),
               writes("whole-file", 5, SOLUTION),
               quoted,
               writes("unrelated", 7, "def add(a, b):\n    return a + b\n" + text(13))]
    fate = dropped(tmp_path, records, index)
    assert fate["thirteen"] == ("hidden_material", "1 shared 13-grams with hidden material, most with "
                                                   "builtin:ledger-carry solution file solution/1/ledger.py (1)")
    assert fate["twelve"] == (None, "") and fate["unrelated"] == (None, "")
    assert fate["whole-file"][0] == "hidden_material" and "solution/1/ledger.py" in fate["whole-file"][1]
    assert fate["quotes-check"][0] == "hidden_material" and "builtin:ledger-carry subtask 1 check 1" in \
        fate["quotes-check"][1]


def test_tool_output_and_final_diff_count_too(builtin_root, tmp_path):
    params = DecontamParams(builtin=True, easy=False, humaneval=False)  # the hand-built project has no easy tier
    index = HiddenIndex(hidden_material(params, builtin_root), ngram=13)
    shown = record("cat-output", text(21), text(22))
    shown["messages"][3]["content"] = "$ cat /elsewhere/ledger.py\n" + SOLUTION
    diff = "+++ b/ledger.py\n" + "".join(f"+{line}\n" for line in SOLUTION.split("\n"))
    in_diff = record("diff-only", text(23), diff)
    nested = record("nested-args", text(24), text(25),
                    arguments={"edits": [{"old": "x", "new": " ".join(SOLUTION_WORDS[:14])}], "dry_run": False})
    fate = dropped(tmp_path, [shown, in_diff, nested], index)
    assert {task: reason for task, (reason, _) in fate.items()} == {
        "cat-output": "hidden_material", "diff-only": "hidden_material", "nested-args": "hidden_material"}


def test_gold_patch_counts_its_added_lines_only_and_counts_are_not_answers():
    patch = ("--- a/calc.py\n+++ b/calc.py\n@@ -1,3 +1,3 @@\n"
             " context line one two three four five six seven eight nine ten eleven twelve thirteen\n"
             "-removed line alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu\n"
             "+added line red orange yellow green blue indigo violet black white grey brown pink\n")
    pieces = verifier_hidden("pr:octo/calc#3", VerifierSpec(kind="reference_patch", patch=patch), 1)
    assert pieces == [("pr:octo/calc#3", "subtask 1 gold patch",
                       "added line red orange yellow green blue indigo violet black white grey brown pink")]
    index = HiddenIndex(pieces + [("builtin:t", "solution file solution/1/n.txt",
                                   " ".join(str(i) for i in range(40)) + "\n" + "0 " * 20)], ngram=13)
    context = "context line one two three four five six seven eight nine ten eleven twelve thirteen"
    assert index.leak([context]) is None
    assert index.leak(["alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu removed line"]) is None
    assert index.leak(["ADDED line: red, orange, yellow, green, blue, indigo, violet, black, white, grey, brown"])
    assert index.leak([" ".join(str(i) for i in range(5, 25)), "0 " * 30]) is None  # a count, a run of zeros
    rubric = VerifierSpec(kind="rubric", criteria=["the report names every station and its trip count"])
    assert verifier_hidden("agencybench:t", rubric, 2) == [
        ("agencybench:t", "subtask 2 criterion 1", "the report names every station and its trip count")]


def test_humaneval_canonical_solution_and_test_are_hidden_material(tmp_path):
    pieces = [p for p in hidden_material(DecontamParams(builtin=False, humaneval=True), tmp_path)
              if p[0] == "humaneval:HumanEval/0"]
    kinds = {kind: text for _, kind, text in pieces}
    assert set(kinds) == {"canonical solution", "test", "subtask 1 check 1"}
    assert "def check(candidate):" in kinds["test"] and "for idx, elem in enumerate" in kinds["canonical solution"]
