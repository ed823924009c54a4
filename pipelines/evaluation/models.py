"""The models under test (``eval.models``): their inputs checked, loaded, and described for the records.

An entry with ``adapter`` gets the SFT output on top of its ``llm.models`` spec: a PEFT adapter applied
to the spec's weights when the folder has ``adapter_config.json``, else the folder's full weights. An entry
with ``served_adapter`` (openai backend) asks the server for the adapter it serves under that name (vLLM
``--enable-lora --lora-modules NAME=models/sft``, SGLang ``--lora-paths NAME=models/sft``): its requests
carry ``model: NAME``; nothing is read locally, so it is compared with the baseline but is no candidate for
champion registration, which needs the adapter's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.core.errors import UserError
from pipelines.core.params import Params
from pipelines.llm.base import ChatModel

STAGE_OF_INPUT = {"models/base": "base_model", "models/sft": "sft"}


def resolve(root: Path, path: str) -> Path:
    """``path`` as given when absolute, else under the project ``root``."""
    p = Path(path)
    return p if p.is_absolute() else root / p


def check_inputs(params: Params, root: Path) -> None:
    """Fail with one line when a model directory or an AgencyBench folder the params name is missing."""
    for entry in params.eval.models:
        spec = params.llm.models[entry.model]
        needed = ([spec.path] if spec.backend == "local" else []) + ([entry.adapter] if entry.adapter else [])
        for rel in needed:
            if not resolve(root, rel).exists():
                stage = STAGE_OF_INPUT.get(Path(rel).as_posix().rstrip("/"))
                fix = f"run `dvc repro {stage}`" if stage else "check eval.models and llm.models in params.yaml"
                raise UserError(f"{rel} not found; {fix}")
        if entry.adapter:
            folder = resolve(root, entry.adapter)
            if not ((folder / "adapter_config.json").exists() or (folder / "config.json").exists()):
                raise UserError(f"{entry.adapter}: neither a PEFT adapter (adapter_config.json) nor model weights "
                                f"(config.json); rerun `dvc repro sft`")
    for suite in params.eval.suites:
        if suite.directory and not resolve(root, suite.directory).is_dir():
            raise UserError(f"{suite.directory}: AgencyBench directory not found (eval.suites, {suite.name}); "
                            f"download AgencyBench v1 there or remove the suite")


def build_models(params: Params, root: Path) -> dict[str, ChatModel]:
    """The models of ``eval.models`` (inputs checked by :func:`check_inputs`), loaded now so that a broken
    directory fails here with its one-line error instead of turning every trial into an infra error."""
    from pipelines.llm.roles import build_model

    models: dict[str, ChatModel] = {}
    for entry in params.eval.models:
        spec = params.llm.models[entry.model]
        if spec.backend == "local":
            spec = spec.model_copy(update={"path": str(resolve(root, spec.path))})
        if entry.adapter:
            folder = resolve(root, entry.adapter)
            if (folder / "adapter_config.json").exists():
                spec = spec.model_copy(update={"adapter": str(folder)})
            else:
                spec = spec.model_copy(update={"path": str(folder), "adapter": None})
        if entry.served_adapter:
            spec = spec.model_copy(update={"model": entry.served_adapter})
        tuned = entry.adapter or entry.served_adapter
        model = build_model(f"{entry.model}+{entry.name}" if tuned else entry.model, spec)
        if hasattr(model, "load"):
            model.load()
        models[entry.name] = model
    return models


def describe_models(params: Params, root: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """What each model under test is (backend, weights, SFT output and its kind), for records and the report."""
    entries = {e.name: e for e in params.eval.models}
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        entry = entries.get(name)
        if entry is None:
            out[name] = {"model": name}
            continue
        spec = params.llm.models[entry.model]
        info: dict[str, Any] = {"model": entry.model, "backend": spec.backend,
                                "weights": getattr(spec, "path", None) or getattr(spec, "model", None)
                                or getattr(spec, "script", None), "adapter": getattr(spec, "adapter", None)}
        if entry.adapter:
            kind = sft_kind(resolve(root, entry.adapter))
            info.update({"weights": entry.adapter, "adapter": None} if kind == "full" else {"adapter": entry.adapter})
            info["sft"] = kind
        if entry.served_adapter:
            info["served_adapter"] = entry.served_adapter
        out[name] = {k: v for k, v in info.items() if v is not None}
    return out


def sft_kind(folder: Path) -> str:
    """'lora' when ``folder`` is a PEFT adapter (adapter_config.json), else 'full' (fine-tuned weights)."""
    return "lora" if (folder / "adapter_config.json").exists() else "full"
