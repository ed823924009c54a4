"""Shared fixtures: real things built small (the embedded model converted once, a tiny random model)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# the needs_bwrap marker's hooks: a test that needs bubblewrap fails without it, or skips and the run says so
from tests.sandbox_gate import (pytest_configure, pytest_runtest_logreport, pytest_runtest_setup,  # noqa: F401
                                pytest_unconfigure)
from tests.stack import postgres, s3_store, team  # noqa: F401  (session fixtures: real servers on loopback)

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def make_project(root: Path) -> Path:
    """A throwaway project root with the repo's params.yaml, dvc.yaml, task data and example repository, under git."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(REPO / name, root / name)
    # the held-out task data curate decontaminates against and eval runs, and the example repository the PR
    # stages mine, as a checkout has them
    shutil.copytree(REPO / "data" / "tasks", root / "data" / "tasks", dirs_exist_ok=True)
    shutil.copy(REPO / "data" / "example-repo.bundle", root / "data" / "example-repo.bundle")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "add", "."], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "init"],
                   cwd=root, check=True)
    return root


def run_module(module: str, *args: str, root: Path, env: dict | None = None, timeout: int = 600):
    """Run ``python -m module`` as a user would, with the project root as cwd."""
    full_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # default: the root's db
    full_env.update({"LIMI_ROOT": str(root), "PYTHONPATH": str(REPO), **(env or {})})
    return subprocess.run([sys.executable, "-m", module, *args], cwd=root, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def built_project(tmp_path_factory) -> Path:
    """A project where the real base_model stage converted the embedded GGUF (about 20 s, once)."""
    root = make_project(tmp_path_factory.mktemp("project"))
    result = run_module("pipelines.base_model", root=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root


@pytest.fixture(scope="session")
def base_model_dir(built_project) -> Path:
    return built_project / "models" / "base"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, base_model_dir) -> Path:
    """A randomly initialised 2-layer Llama with the real tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny")
    tok = AutoTokenizer.from_pretrained(base_model_dir)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


ARTIFACTS_ENV = "LIMI_TEST_ARTIFACTS"


@pytest.fixture
def keep_artifact(request):
    """``keep(path)``: a file a person may want to look at after the run (a screenshot, say). It stays where
    the test wrote it; with ``LIMI_TEST_ARTIFACTS`` set (CI sets test-artifacts/ in the checkout) a copy goes
    to ``$LIMI_TEST_ARTIFACTS/<test name>/``. Returns where the file can be found."""
    def keep(path: Path) -> Path:
        folder = os.environ.get(ARTIFACTS_ENV)
        if not folder:
            return path
        dest = Path(folder) / request.node.name / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
        return dest

    return keep


@pytest.fixture(scope="session")
def env_cache(tmp_path_factory) -> Path:
    """A cache of task environments private to this test session (``LIMI_ENV_CACHE``, which stages started as
    subprocesses inherit too), so every run builds its own from the package index, once."""
    cache = tmp_path_factory.mktemp("envs")
    before = os.environ.get("LIMI_ENV_CACHE")
    os.environ["LIMI_ENV_CACHE"] = str(cache)
    yield cache
    if before is None:
        os.environ.pop("LIMI_ENV_CACHE", None)
    else:
        os.environ["LIMI_ENV_CACHE"] = before


@pytest.fixture(scope="session")
def task_env(env_cache) -> Path:
    """The task environment with only the pinned pytest (what the example repository declares), built once."""
    from pipelines.agent.pyenv import ensure_env
    from pipelines.core.schema import PythonEnv
    from pipelines.prs.config import PRTestsParams

    return ensure_env(PythonEnv(packages=[PRTestsParams().pytest]))


@pytest.fixture
def greedy_alone():
    """``model.generate`` for one prompt, greedy: the reference the batched decoders are checked against."""
    def run(model, prompt: list[int], max_new: int, eos: int) -> list[int]:
        import torch

        ids = torch.tensor([prompt])
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new, do_sample=False,
                             eos_token_id=eos, pad_token_id=eos)
        return out[0, len(prompt):].tolist()

    return run
