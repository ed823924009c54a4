"""The SFT output as an MLflow model: logged and registered in a real SQLite store, loaded back through
``models:/limi-sft@champion`` and generating what the eval stage's local backend generates; a tiny random
Llama with the real tokenizer and chat template, and a LoRA adapter with non-zero weights."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import mlflow
import pytest
import yaml

from pipelines.core.registry import (CHAMPION_ALIAS, CHAMPION_MODEL, md5_tags, pip_requirements, register_champion,
                                     sft_artifacts)
from pipelines.core.tracking import dvc_md5, stage_run
from pipelines.llm.local.model import LocalModel

NEW = 6  # new tokens per generation


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """A LoRA adapter over the tiny model whose B matrices are random, so it changes what the model says."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("adapter")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                      task_type="CAUSAL_LM"))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "lora_B" in name:
                weight.normal_(0, 0.5)
    model.save_pretrained(out)
    return out


@pytest.fixture
def project(tmp_path, monkeypatch, tiny_model_dir, adapter_dir) -> Path:
    """models/base and models/sft as the stages write them, a dvc.lock recording the base (and a stale md5 for
    the adapter), and MLflow pointed at a SQLite file inside."""
    root = tmp_path / "proj"
    shutil.copytree(tiny_model_dir, root / "models" / "base")
    shutil.copytree(adapter_dir, root / "models" / "sft")
    lock = {"schema": "2.0", "stages": {
        "base_model": {"cmd": "python -m pipelines.base_model", "outs": [
            {"path": "models/base", "hash": "md5", "md5": dvc_md5(root / "models" / "base")}]},
        "sft": {"cmd": "python -m pipelines.sft", "outs": [
            {"path": "models/sft", "hash": "md5", "md5": "0" * 32 + ".dir"}]}}}
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    monkeypatch.setenv("LIMI_ROOT", str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.delenv("LIMI_PARENT_RUN_ID", raising=False)
    return root


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection fails: logging and loading must need none (the store is a SQLite file)."""
    def refuse(self, address):
        raise AssertionError(f"network connection attempted to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def expected(path: Path, messages, adapter: Path | None = None, tools=None) -> str:
    """What the eval stage's local backend answers, greedy, without its end-of-turn token."""
    reply = LocalModel(path, adapter=adapter, batching=False).chat(messages, tools=tools, max_tokens=NEW)
    return reply.raw.removesuffix("<|im_end|>")


def register(root: Path, metrics: dict, sft: Path | None = None):
    with stage_run("eval", {"k": 1}, root=root) as run:
        run.log_metrics({"base.sr_at_r": 0.0, "tuned.sr_at_r": 100.0})  # the run's own numbers, not the model's
        registered = register_champion(run, sft or root / "models" / "sft", base_dir=root / "models" / "base",
                                       metrics=metrics, tags={"main_metric": "sr_at_r", "model": "tuned"}, root=root,
                                       max_new_tokens=NEW)
    return registered, run.run_id


def test_champion_loads_from_the_registry_and_generates_like_eval(project, no_network):
    from mlflow import MlflowClient

    registered, run_id = register(project, {"sr_at_r": 100.0, "delta.sr_at_r": 100.0, "rc_at_r": None})
    assert registered["version"] == "1" and registered["model_uri"] == "models:/limi-sft@champion"

    client = MlflowClient()
    version = client.get_model_version_by_alias(CHAMPION_MODEL, CHAMPION_ALIAS)
    assert str(version.version) == "1" and version.run_id == run_id
    assert version.source == f"models:/{registered['model_id']}"  # the logged model, not loose artifacts
    base_md5, sft_md5 = dvc_md5(project / "models" / "base"), dvc_md5(project / "models" / "sft")
    assert {k: version.tags[k] for k in ("base_md5", "base_md5_from", "sft_md5", "sft_md5_from", "sft_kind")} == {
        "base_md5": base_md5, "base_md5_from": "dvc.lock",  # dvc.lock records it and the folder agrees
        "sft_md5": sft_md5, "sft_md5_from": "computed",  # the lock's md5 is stale: the folder's own is tagged
        "sft_kind": "lora"}
    assert version.tags["main_metric"] == "sr_at_r"

    # the eval metrics are the logged model's, and only those: the run's own numbers stay the run's
    logged = client.get_logged_model(registered["model_id"])
    assert {m.key: m.value for m in logged.metrics} == {"sr_at_r": 100.0, "delta.sr_at_r": 100.0}
    assert logged.source_run_id == run_id and logged.tags["sft_md5"] == sft_md5
    assert client.get_run(run_id).data.tags["registry.version"] == "1"

    model = mlflow.pyfunc.load_model("models:/limi-sft@champion")
    requirements = Path(mlflow.artifacts.download_artifacts(f"{logged.artifact_location}/requirements.txt")).read_text()
    assert {line.split("==")[0] for line in requirements.split()} == {"mlflow", "torch", "transformers", "jinja2",
                                                                      "peft"}
    assert "+" not in requirements  # no local version label pip could not resolve

    base, sft = project / "models" / "base", project / "models" / "sft"
    hello = [{"role": "user", "content": "Write hello.txt containing hello."}]
    tools = [{"type": "function", "function": {"name": "bash", "description": "Run a command.",
                                               "parameters": {"type": "object", "properties": {
                                                   "command": {"type": "string"}}, "required": ["command"]}}}]
    tuned = expected(base, hello, sft)
    assert tuned != expected(base, hello)  # the adapter is applied
    assert model.predict(["Write hello.txt containing hello."]) == [tuned]  # a prompt is one user message
    assert model.predict([hello, {"messages": hello, "tools": tools}]) == [tuned, expected(base, hello, sft, tools)]
    assert model.predict(hello) == [tuned]  # one conversation
    short = model.predict(hello, params={"max_new_tokens": 2})[0]
    assert tuned.startswith(short) and len(model.unwrap_python_model().tokenizer(short).input_ids) <= 2

    import pandas as pd

    assert model.predict(pd.DataFrame({"prompt": ["Write hello.txt containing hello."]})) == [tuned]
    with pytest.raises(Exception, match="needs a 'messages' or a 'prompt' column"):
        model.predict(pd.DataFrame({"text": ["x"]}))

    # a second champion: a new version, and the alias moves to it
    registered, _ = register(project, {"sr_at_r": 100.0})
    assert registered["version"] == "2"
    assert str(client.get_model_version_by_alias(CHAMPION_MODEL, CHAMPION_ALIAS).version) == "2"


def test_full_weights_load_without_a_base(project, tiny_model_dir):
    full = project / "models" / "full"
    shutil.copytree(tiny_model_dir, full)
    assert sft_artifacts(full, None) == {"model": str(full)}
    registered, _ = register(project, {"sr_at_r": 50.0}, sft=full)
    version = mlflow.MlflowClient().get_model_version(CHAMPION_MODEL, registered["version"])
    assert version.tags["sft_kind"] == "full" and version.tags["sft_md5_from"] == "computed"
    prompt = "List the files."
    assert mlflow.pyfunc.load_model(f"models:/{CHAMPION_MODEL}/{registered['version']}").predict([prompt]) == [
        expected(full, [{"role": "user", "content": prompt}])]
    assert not any(r.startswith("peft") for r in pip_requirements(adapter=False))


def test_bad_folders_and_no_run_register_nothing(project, caplog):
    with pytest.raises(ValueError, match="is a LoRA adapter but its base model folder"):
        sft_artifacts(project / "models" / "sft", project / "missing")
    with pytest.raises(ValueError, match="neither a PEFT adapter"):
        sft_artifacts(project / "models", None)
    assert register_champion(None, project / "models" / "sft") is None
    registered, _ = register(project, {}, sft=project / "models")  # neither kind: a warning, no version
    assert registered is None and "registration failed" in caplog.text
    assert mlflow.MlflowClient().search_model_versions(f"name='{CHAMPION_MODEL}'") == []
    assert md5_tags(project, {"x": project / "nothing"}) == {"x_md5": "unknown", "x_md5_from": "unknown"}
