"""Roles (teacher, critic, user simulator, judge, student) to models, by the names params.yaml gives them.

>>> from pipelines.core.params import load_params
>>> teacher = model_for_role(load_params().llm, "teacher")
>>> reply = teacher.chat([{"role": "user", "content": "hi"}], tools=None)
"""

from __future__ import annotations

import threading
from pathlib import Path

from pipelines.core.errors import ModelError
from pipelines.core.paths import repo_root
from pipelines.llm.base import ChatModel

_cache: dict[tuple, ChatModel] = {}
_cache_lock = threading.Lock()  # episodes in threads must share one instance (one copy of the weights, one batcher)


def build_model(name: str, spec) -> ChatModel:
    """Instantiate the backend a ``llm.models.<name>`` params entry describes (cached per spec)."""
    key = (name, spec.model_dump_json())
    with _cache_lock:
        if key not in _cache:
            _cache[key] = _build(name, spec)
        return _cache[key]


def _build(name: str, spec) -> ChatModel:
    if spec.backend == "local":
        from pipelines.llm.local.model import LocalModel

        model: ChatModel = LocalModel(_resolve(spec.path), name=name,
                                      adapter=_resolve(spec.adapter) if spec.adapter else None,
                                      max_context=spec.max_context, device=spec.device,
                                      max_batch=spec.max_batch, kv_cache_mb=spec.kv_cache_mb,
                                      packed_gemm=spec.packed_gemm, draft_tokens=spec.draft_tokens,
                                      sampling=spec.sampling.model_dump())
    elif spec.backend == "openai":
        from pipelines.llm.openai_backend import OpenAIModel

        model = OpenAIModel(spec.model, name=name, base_url=spec.base_url, api_key_env=spec.api_key_env,
                            timeout_s=spec.timeout_s, max_retries=spec.max_retries, backoff_s=spec.backoff_s,
                            usd_per_mtok_in=spec.usd_per_mtok_in, usd_per_mtok_out=spec.usd_per_mtok_out,
                            sampling=spec.sampling.model_dump(), reasoning=spec.reasoning,
                            reasoning_effort=spec.reasoning_effort, max_completion_tokens=spec.max_completion_tokens,
                            tool_call_parser=spec.tool_call_parser)
    elif spec.backend == "scripted":
        from pipelines.llm.scripted import ScriptedModel

        model = ScriptedModel.from_file(_resolve(spec.script), name=name)
    else:  # params validation makes this unreachable
        raise ModelError(f"unknown backend {spec.backend!r}")
    return model


def model_for_role(llm_params, role: str) -> ChatModel:
    """The model that plays ``role`` (teacher, critic, user_simulator, judge, student)."""
    name = getattr(llm_params.roles, role)
    return build_model(name, llm_params.models[name])


def _resolve(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else repo_root() / p
