"""What a rubric judge is shown: the files the agent changed (not the baseline), the most relevant first,
within the token budget, with a note of what was left out; and the verifier that runs a rubric's commands
(requirements checked by execution) before asking the judge."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pipelines.agent.evidence import CHARS_PER_TOKEN, ChangedFile, build_evidence, changed_files, parse_status, relevance, words
from pipelines.agent.sandbox.bwrap import BwrapSandbox
from pipelines.agent.verifiers import RubricVerifier, make_verifier, parse_rubric_answer
from pipelines.core.schema import VerifierSpec
from pipelines.llm.scripted import ScriptedModel

REQUIREMENTS = ["Users can register an account and the password is verified on login.",
                "Chat history is stored in one history file per friend."]


def git_baseline(workspace):
    """Commit the workspace as its baseline, as pipelines.agent.workspace does."""
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    for args in (["init", "-q"], ["add", "-A"],
                 ["-c", "user.email=t@t.invalid", "-c", "user.name=t", "commit", "-q", "-m", "baseline"]):
        subprocess.run(["git", *args], cwd=workspace, check=True, capture_output=True, env=env)


def forty_file_workspace(workspace):
    """36 baseline files (unchanged by the agent), then 4 files the agent writes or changes."""
    for i in range(36):
        (workspace / "vendor").mkdir(exist_ok=True)
        (workspace / "vendor" / f"lib{i:02d}.txt").write_text(f"baseline file {i}: register password history\n" * 20)
    (workspace / "README.md").write_text("A chat app.\n")
    git_baseline(workspace)
    (workspace / "README.md").write_text("A chat app.\nBuild with make.\n")  # changed, barely relevant
    (workspace / "src").mkdir()
    (workspace / "src" / "auth.cpp").write_text(
        "// register an account; verify the password on login\nbool login(User u, Password p) {\n"
        + "  return check(u, p);\n" * 200 + "}\n")  # relevant and too long to show whole
    (workspace / "src" / "history.cpp").write_text("// chat history: one history file per friend\n"
                                                    "void store(Friend f, Message m) { append(f.file(), m); }\n")
    (workspace / "notes.txt").write_text("unrelated scratch notes about lunch\n" * 300)
    (workspace / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0binary")
    (workspace / "escape").symlink_to("/etc/passwd")


@pytest.mark.needs_bwrap
def test_judge_sees_changed_files_most_relevant_first_within_budget(workspace):
    forty_file_workspace(workspace)
    sandbox = BwrapSandbox(workspace, timeout_s=30)
    files, note = changed_files(workspace, sandbox)
    assert note == ""
    assert sorted(f.path for f in files) == ["README.md", "escape", "logo.png", "notes.txt", "src/auth.cpp",
                                             "src/history.cpp"]  # the 36 unchanged baseline files are not there
    budget = 700
    transcript = [{"role": "user", "content": "Build the chat app."},
                  {"role": "assistant", "content": "", "tool_calls": [
                      {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": {"command": "make"}}}]},
                  {"role": "tool", "tool_call_id": "c1", "content": "g++ -o bin/chat_app ...\nbuild ok"},
                  {"role": "assistant", "content": "", "tool_calls": [
                      {"id": "c2", "type": "function", "function": {"name": "finish",
                                                                     "arguments": {"summary": "Login and history done."}}}]}]
    evidence = build_evidence(files, REQUIREMENTS, messages=transcript, budget_tokens=budget)
    text = evidence.text
    assert len(text) <= budget * CHARS_PER_TOKEN
    # the most relevant changed files first; no baseline file and nothing outside the workspace
    assert evidence.shown[:2] == ["src/history.cpp", "src/auth.cpp"]
    assert text.index("--- src/history.cpp") < text.index("--- src/auth.cpp")
    assert "baseline file" not in text and "root:" not in text and "PNG" not in text
    assert "Login and history done." in text and "build ok" in text
    # what did not fit, or was cut, or cannot be shown, is listed with its size
    note = text[text.index("## Left out"):]
    assert "src/auth.cpp (cut:" in note and "notes.txt (cut:" in note and "of 10800 chars shown)" in note
    assert "logo.png (binary, 16 bytes)" in note and "escape (symlink" in note
    # a tighter budget: the files are cut shorter, and the note counts what it has no room to name
    tight = build_evidence(files, REQUIREMENTS, messages=transcript, budget_tokens=400)
    assert len(tight.text) <= 400 * CHARS_PER_TOKEN and tight.shown[:2] == ["src/history.cpp", "src/auth.cpp"]
    assert tight.shown[-1] == "notes.txt" and any(e.startswith("notes.txt (cut: ") for e in tight.left_out)
    assert tight.text.rstrip().endswith("more files")
    # and with more changed files than room, the least relevant are not shown at all but listed
    crowd = files + [ChangedFile(f"misc/extra{i}.txt", "added", 900, "filler text\n" * 75) for i in range(8)]
    crowded = build_evidence(crowd, REQUIREMENTS, budget_tokens=1500)
    assert crowded.shown[:2] == ["src/history.cpp", "src/auth.cpp"] and len(crowded.text) <= 1500 * CHARS_PER_TOKEN
    assert any(e.endswith("(not shown, 900 chars)") for e in crowded.left_out)
    # a bigger budget shows more, still in relevance order
    roomy = build_evidence(files, REQUIREMENTS, budget_tokens=20_000)
    assert roomy.shown[:2] == ["src/history.cpp", "src/auth.cpp"] and "notes.txt" in roomy.shown
    assert len(roomy.text) <= 20_000 * CHARS_PER_TOKEN and "src/auth.cpp (cut" not in roomy.text


def test_relevance_counts_distinct_requirement_words_path_thrice():
    wanted = words(" ".join(REQUIREMENTS))
    assert {"history", "friend", "password", "register"} <= wanted and "the" not in wanted
    named = ChangedFile("src/history.cpp", "added", text="x")
    repeated = ChangedFile("src/util.cpp", "added", text="history " * 500)
    assert relevance(named, wanted) == 3 and relevance(repeated, wanted) == 1
    assert relevance(ChangedFile("a.bin", "added", text=None), wanted) == 0


def test_parse_status_reads_porcelain_z():
    out = "?? src/new.cpp\0 M README.md\0 D old.txt\0A  staged.h\0?? nested/\0"
    assert parse_status(out) == [("README.md", "modified"), ("old.txt", "deleted"), ("src/new.cpp", "added"),
                                 ("staged.h", "added")]


def test_judge_reasons_are_one_line_and_checks_say_judge():
    checks = parse_rubric_answer('{"scores": [{"criterion": 1, "met": true, "rationale": "line one\\nline two"}]}',
                                 ["a", "b"])
    assert [(c.passed, c.output, c.method) for c in checks] == [(True, "line one line two", "judge"),
                                                                (False, "not scored", "judge")]


def test_rubric_spec_requirements_cover_criteria_then_commands():
    spec = VerifierSpec(kind="rubric", criteria=["c1"], commands=["make"], requirements=["r1", "it builds"])
    assert spec.requirements[-1] == "it builds"
    with pytest.raises(ValueError, match="one sentence per criterion, then one per command"):
        VerifierSpec(kind="rubric", criteria=["c1"], commands=["make"], requirements=["a", "b", "c"])


@pytest.mark.needs_bwrap
def test_rubric_runs_its_commands_before_the_judge_and_shows_their_output(workspace):
    (workspace / "ok.sh").write_text("echo compiled fine\n")
    git_baseline(workspace)
    (workspace / "main.c").write_text("int main(void) { return 0; }\n")
    spec = VerifierSpec(kind="rubric", criteria=["The program is written in C."],
                        commands=["bash ok.sh", "false"],
                        requirements=["It is C.", "It builds.", "It runs."])
    judge = ScriptedModel([{"content": json.dumps({"scores": [{"criterion": 1, "met": True, "rationale": "C"}]})}])
    verifier = make_verifier(spec, BwrapSandbox(workspace, timeout_s=30), judge=judge, query="Write main.c.",
                             evidence_tokens=800)
    assert isinstance(verifier, RubricVerifier) and verifier.evidence_tokens == 800
    result = verifier.verify(workspace)
    assert [(c.method, c.passed, c.requirement) for c in result.checks] == [
        ("judge", True, "It is C."), ("execution", True, "It builds."), ("execution", False, "It runs.")]
    assert result.score == pytest.approx(2 / 3) and not result.passed
    prompt = judge.requests[0]["messages"][0]["content"]
    assert "compiled fine" in prompt and "$ false\n(exit status 1)" in prompt and "--- main.c" in prompt
    assert "ok.sh" not in prompt.split("## Files")[1]  # a baseline file, unchanged
