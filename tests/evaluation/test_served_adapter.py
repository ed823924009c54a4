"""Adapters served by name: ``eval.models`` entries with ``served_adapter`` on the openai backend ask the server
(vLLM ``--lora-modules NAME=models/sft``) for ``model: NAME``; a local adapter folder on that backend is refused."""

from __future__ import annotations

import pytest

from pipelines.core.errors import ParamsError
from pipelines.core.params import parse_params
from pipelines.evaluation.models import build_models, describe_models
from tests.llm.test_reasoning_models import HI, OpenAILike, key  # noqa: F401  (key: the API key fixture)


def eval_params(url: str, *entries: dict) -> dict:
    return {"llm": {"models": {"embedded": {"backend": "local"}, "vllm": {
        "backend": "openai", "model": "Qwen/Qwen2.5-7B-Instruct", "base_url": url,
        "api_key_env": "LIMI_REASONING_KEY", "timeout_s": 5, "max_retries": 0}}}, "eval": {"models": list(entries)}}


def test_served_adapter_is_asked_for_by_name(tmp_path, key):
    fake = OpenAILike([{"content": "base"}, {"content": "tuned"}])
    params = parse_params(eval_params(fake.url, {"name": "base", "model": "vllm"},
                                      {"name": "tuned", "model": "vllm", "served_adapter": "limi-sft"}))
    try:
        models = build_models(params, tmp_path)
        answers = [models[name].chat(HI).content for name in ("base", "tuned")]
    finally:
        fake.close()
    assert answers == ["base", "tuned"]
    assert [r["body"]["model"] for r in fake.requests] == ["Qwen/Qwen2.5-7B-Instruct", "limi-sft"]
    info = describe_models(params, tmp_path, ["base", "tuned"])
    assert info["tuned"] == {"model": "vllm", "backend": "openai", "weights": "Qwen/Qwen2.5-7B-Instruct",
                             "served_adapter": "limi-sft"}


@pytest.mark.parametrize("entry, message", [
    ({"name": "tuned", "model": "vllm", "adapter": "models/sft"},
     "eval.models.0.adapter is a local folder, which the openai backend of 'vllm' cannot load; serve it by name "
     "(vllm serve BASE --enable-lora --lora-modules tuned=models/sft) and set served_adapter: tuned instead"),
    ({"name": "tuned", "model": "embedded", "served_adapter": "tuned"},
     "eval.models.0.served_adapter names an adapter on an OpenAI-compatible server; 'embedded' is local"),
    ({"name": "tuned", "model": "vllm", "adapter": "models/sft", "served_adapter": "tuned"},
     "adapter (a local folder) and served_adapter (a name on a server) exclude each other"),
])
def test_adapter_and_backend_must_fit(entry, message):
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_params(eval_params("http://127.0.0.1:9/v1", entry))
