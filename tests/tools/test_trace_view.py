"""A collected episode as the team looks at it: the collect stage runs one real seed task (the replay teacher
explores, reads, edits with str_replace and finishes, in the bubblewrap sandbox) with its traces going to an
MLflow server on loopback; headless Chromium opens the MLflow UI's trace view of that episode and finds
every tool call there: its span in the span tree, in the record's order, and, once the span is selected,
its arguments. The screenshot (the edit selected) is kept as a test artifact: under the test's temp dir,
and in $LIMI_TEST_ARTIFACTS when set (CI: test-artifacts/ in the checkout). README's docs/trace.png is
this screenshot.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from pipelines.core.schema import read_trajectories
from tests.browser import Browser, require_chromium
from tests.conftest import REPO, make_project, run_module
from tests.stack import BIN, clean_env, dump_logs, free_port, start, stop, wait_healthy

pytestmark = pytest.mark.needs_bwrap

#: a seed task whose reference fix the replay teacher applies with str_replace (README shows this episode)
TASK = "seed-window-sums-off-by-one"
# The page's hooks are MLflow 3.17's UI (requirements/lock.txt): the trace route
# #/experiments/<id>/traces/<trace id>, which opens the trace drawer on the Traces tab; a span tree row per
# span, data-testid "span-title-row-<span id>"; the selected span's view; component ids of the buttons below.
#: MLflow UI furniture that covers the trace: the assistant panel it opens on a first visit from localhost,
#: the "detect issues" hint; then the trace drawer goes full width
UI_CHROME = ("mlflow.assistant.chat_panel.close", "mlflow.detect_issues.guidance.dismiss",
             "mlflow.evaluations_review.modal.fullscreen")
#: the selected span's Inputs / Outputs
SPAN_VIEW = '[data-testid="model-trace-explorer-default-span-view"]'


@pytest.fixture
def mlflow_server(tmp_path):
    """``mlflow server`` on 127.0.0.1 with a SQLite store: one worker, no job runner (about 5 s to healthy)."""
    base = tmp_path / "mlflow"
    base.mkdir()
    port = free_port()
    proc = start([str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{base / 'mlflow.db'}",
                  "--default-artifact-root", (base / "artifacts").as_uri(), "--host", "127.0.0.1",
                  "--port", str(port), "--workers", "1"],
                 base / "mlflow-server.log", env=clean_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"), cwd=base)
    try:
        try:
            wait_healthy(f"http://127.0.0.1:{port}/health", proc)
        except BaseException:
            dump_logs(base)
            raise
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc, ctrl_c=False)


def seed_project(root: Path) -> Path:
    """A project whose seed set is the one task, collected by the replay teacher alone."""
    root = make_project(root)
    shutil.copytree(REPO / "data" / "seeds" / TASK, root / "data" / "seeds" / TASK)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["collect"].update({"seeds": True, "drills": False, "query_files": [], "parallel": 1,
                              "teachers": [{"model": "replay", "sources": ["human"]}]})
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def argument_line(name: str, value) -> str:
    """What the span view's Inputs show of a tool-call argument: ``name: value`` for a one-line string, the
    first non-blank line for a longer one (shown as a YAML block), ``name:`` for anything else."""
    lines = [line.strip() for line in value.splitlines() if line.strip()] if isinstance(value, str) else []
    if not lines:
        return f"{name}:"
    return f"{name}: {value}" if value == lines[0] else lines[0]


def test_the_mlflow_trace_view_shows_a_collected_episodes_tool_calls(tmp_path, mlflow_server, keep_artifact):
    require_chromium()
    from mlflow import MlflowClient

    root = seed_project(tmp_path / "proj")
    result = run_module("pipelines.collect", root=root, env={"MLFLOW_TRACKING_URI": mlflow_server}, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    (record,) = read_trajectories(root / "data/trajectories/episodes.jsonl")
    assert record["meta"]["task_id"] == TASK and record["meta"]["passed"]
    calls = [c["function"] for m in record["messages"] for c in m.get("tool_calls") or []]
    assert [c["name"] for c in calls] == ["bash", "read_file", "str_replace", "finish"]

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("limi-pipeline").experiment_id
    (trace,) = client.search_traces(locations=[experiment])
    assert trace.info.tags["limi.episode_key"] == record["meta"]["episode_key"]
    tools = sorted((s for s in trace.data.spans if s.span_type == "TOOL"), key=lambda s: s.start_time_ns)
    assert [s.name for s in tools] == [c["name"] for c in calls]

    page = f"{mlflow_server}/#/experiments/{experiment}/traces/{trace.info.trace_id}"
    with Browser(height=680) as browser:  # the span tree and the selected span fit; no blank below
        browser.open(page)
        # the span tree: one title row per span, its test id carrying the span id
        rows = browser.wait_for(
            "(() => { const rows = [...document.querySelectorAll('[data-testid^=\"span-title-row-\"]')];"
            f" return rows.length >= {len(trace.data.spans)} && rows.map(r => [r.dataset.testid.slice(15),"
            " r.textContent.trim()]); })()", timeout_s=60, what=f"the span tree of {page}")
        titles = dict(rows)
        assert [titles.get(s.span_id) for s in tools] == [s.name for s in tools], rows
        tool_ids = {s.span_id for s in tools}
        assert [span_id for span_id, _ in rows if span_id in tool_ids] == [s.span_id for s in tools]
        # the episode (root span) is selected first: its input is the task (rendered as Markdown)
        task = record["meta"]["query"].replace("`", "")[:60]
        browser.wait_for(f"document.querySelector('{SPAN_VIEW}')?.innerText.includes({json.dumps(task)})",
                         what=f"the task {task!r} in the root span's view")
        for cid in UI_CHROME:
            browser.click(f'[data-component-id="{cid}"]')
        # each tool call, selected, shows its arguments in the span view's Inputs section
        for span, function in zip(tools, calls):
            assert browser.click(f'[data-testid="span-title-row-{span.span_id}"]')
            wanted = [argument_line(name, value) for name, value in function["arguments"].items()]
            browser.wait_for(f"(() => {{ const view = document.querySelector('{SPAN_VIEW}');"
                             " const inputs = view ? view.innerText.split('\\nOutputs\\n')[0] : '';"
                             f" return {json.dumps(wanted)}.every(w => inputs.includes(w)); }})()",
                             what=f"{span.name}'s arguments {wanted} in the span view of {page}")
        edit = next(s for s in tools if s.name == "str_replace")
        browser.click(f'[data-testid="span-title-row-{edit.span_id}"]')
        browser.wait_for(f"document.querySelector('{SPAN_VIEW}')?.innerText.includes('range(len(values) - k + 1)')",
                         what="the fix in the str_replace span's view")
        shot = browser.screenshot(tmp_path / "trace-view.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    print(f"trace view of {trace.info.trace_id}: {keep_artifact(shot)}")
