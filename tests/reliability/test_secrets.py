"""Secrets: with the API keys and tokens set to marker values, a tiny pipeline run (collect with the replay
teacher and an OpenAI-compatible teacher that really sends the key, curate, SFT, each tracked in MLflow)
leaves no marker in its outputs, its tracking store or its logs.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_module
from tests.reliability.figures import FIGURES
from tests.reliability.helpers import FaultyEndpoint, completion
from tests.test_collect import project as replay_project

pytestmark = pytest.mark.needs_bwrap
TOKEN = secrets.token_hex(8)
MARKERS = {"OPENAI_API_KEY": f"sk-proj-{TOKEN}oa", "GITHUB_TOKEN": f"ghp_{TOKEN}gh",
           "AWS_ACCESS_KEY_ID": f"AKIA{TOKEN.upper()}", "AWS_SECRET_ACCESS_KEY": f"{TOKEN}awssecret"}
SEARCHED = ("data", "models", "metrics", "reports", "plots", "dvc.lock", "mlflow.db", "mlartifacts", "mlruns")


def files_with_markers(root: Path, logs: dict[str, str]) -> list[str]:
    """Every file (and log) holding any marker value or the bare token, as bytes, anywhere inside it."""
    needles = [v.encode() for v in MARKERS.values()] + [TOKEN.encode(), TOKEN.upper().encode()]
    hits = []
    for name in SEARCHED:
        top = root / name
        for path in ([top] if top.is_file() else sorted(top.rglob("*")) if top.is_dir() else []):
            if path.is_file() and any(n in path.read_bytes() for n in needles):
                hits.append(str(path.relative_to(root)))
    hits += [f"log of {stage}" for stage, text in logs.items() if any(n.decode() in text for n in needles)]
    return hits


@pytest.mark.figure("secrets")
def test_no_secret_reaches_outputs_tracking_or_logs(tmp_path, tiny_model_dir):
    endpoint = FaultyEndpoint([("ok", completion("Looking around.", [("bash", {
        "command": "env; cat /proc/self/environ; cat ~/.aws/credentials"})])),
        ("ok", completion("", [("finish", {"summary": "done"})]))], default=("status", 500))
    root = replay_project(tmp_path, 3)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["llm"]["models"].update(
        remote={"backend": "openai", "model": "m", "base_url": endpoint.url, "api_key_env": "OPENAI_API_KEY",
                "timeout_s": 5, "max_retries": 0},
        tiny={"backend": "local", "path": str(tiny_model_dir)})
    params["llm"]["roles"]["student"] = "tiny"
    params["collect"]["teachers"] = [{"model": "replay", "sources": ["human"]},
                                     {"model": "remote", "sources": ["human"], "max_queries": 1}]
    params["curate"]["decontam"].update(humaneval=False, agencybench_dirs=[])
    params["sft"].update(max_steps=2, save_steps=1)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**MARKERS, "MLFLOW_TRACKING_URI": "", "CI": "1"}  # empty: the project's own sqlite store
    logs = {}
    try:
        for module, args in (("pipelines.collect", ()), ("pipelines.curate", ()),
                             ("pipelines.sft", ("--base", str(tiny_model_dir)))):
            result = run_module(module, *args, root=root, env=env)
            logs[module] = result.stdout + result.stderr
            assert result.returncode == 0, result.stderr[-3000:]
    finally:
        endpoint.close()
    # the run really held and used the secrets: the endpoint got the key, the agent looked for them
    assert any(MARKERS["OPENAI_API_KEY"] in (r["auth"] or "") for r in endpoint.requests)
    episodes = (root / "data/trajectories/episodes.jsonl").read_text()
    assert "cat /proc/self/environ" in episodes and "OPENAI_API_KEY" not in episodes.split("environ")[-1][:20000]
    assert (root / "mlflow.db").exists() and (root / "models/sft/adapter_model.safetensors").exists()
    assert (root / "data/sft/train.jsonl").exists() and json.loads((root / "metrics/sft.json").read_text())["steps"] == 2
    leaks = files_with_markers(root, logs)
    FIGURES.count("secret_leaks", len(leaks))
    assert leaks == []
