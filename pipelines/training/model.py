"""The model to train: the base weights, LoRA-wrapped unless full fine-tuning, and the precision to use."""

from __future__ import annotations

from pathlib import Path

from pipelines.core.errors import UserError
from pipelines.training.config import SFTParams
from pipelines.core.paths import display_path


def load_model(base: Path, params: SFTParams):
    """The model in ``base``, in bf16 or fp32 per ``params.bf16``, wrapped in LoRA unless ``method: full``.

    The model is named after ``base`` relative to the project root: peft writes that name into the
    adapter's config and model card, which must not depend on where the project lives.
    """
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if use_bf16(params) else torch.float32
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, attn_implementation=attention(params))
    model.config.use_cache = False  # packed batches are only kept apart when transformers sees no cache
    model.name_or_path = model.config.name_or_path = display_path(base)
    if params.method == "lora":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=params.lora.r, lora_alpha=params.lora.alpha, lora_dropout=params.lora.dropout,
                            target_modules=params.lora.target_modules, task_type="CAUSAL_LM")
        model = get_peft_model(model, config)
    return model


def save_model(model, tokenizer, out: Path, state_dict=None) -> None:
    """Write ``model`` (the LoRA adapter, or the full weights) and ``tokenizer`` into the directory ``out``;
    ``state_dict``: the weights gathered from sharded processes (FSDP, ZeRO-3), else the model's own."""
    for config in getattr(model, "peft_config", {}).values():
        if isinstance(config.target_modules, set):  # a set's order changes with each process's hash seed
            config.target_modules = sorted(config.target_modules)
    model.save_pretrained(out, **({"state_dict": state_dict} if state_dict is not None else {}))
    tokenizer.save_pretrained(out)


def attention(params: SFTParams) -> str:
    """The attention implementation to load the model with: ``params.attn_implementation``, ``auto`` being
    flash_attention_2 where the flash-attn package and a CUDA GPU are there, else sdpa. flash_attention_2 without
    them, or flex_attention without torch's flex attention, is a UserError naming the key (transformers' own
    message comes only once the model is loading)."""
    import importlib.util

    import torch

    flash_ready = importlib.util.find_spec("flash_attn") is not None and torch.cuda.is_available()
    if params.attn_implementation == "auto":
        return "flash_attention_2" if flash_ready else "sdpa"
    if params.attn_implementation == "flash_attention_2" and not flash_ready:
        missing = "the flash-attn package" if importlib.util.find_spec("flash_attn") is None else "a CUDA GPU"
        raise UserError(f"sft.attn_implementation: flash_attention_2 needs the flash-attn package and a CUDA GPU; "
                        f"{missing} is missing here (use sdpa or auto)")
    if params.attn_implementation == "flex_attention" and not flex_attention_ready():
        raise UserError(f"sft.attn_implementation: flex_attention needs torch.nn.attention.flex_attention "
                        f"(torch >= 2.5 as transformers requires it); this torch {torch.__version__} has none "
                        f"(use sdpa or auto)")
    return params.attn_implementation


def flex_attention_ready() -> bool:
    """Whether torch's flex attention is there, as transformers checks before loading a model with it."""
    from transformers.utils import is_torch_flex_attn_available

    return bool(is_torch_flex_attn_available())


def use_bf16(params: SFTParams) -> bool:
    """bf16 weights and autocast: ``params.bf16`` true/false, or ``auto`` (where the GPU supports it)."""
    import torch

    if params.bf16 == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return params.bf16 == "true"


def use_checkpointing(params: SFTParams, batch_tokens: int = 0) -> bool:
    """Gradient checkpointing: ``params.gradient_checkpointing`` true/false, or ``auto``: on a GPU always, on a
    CPU when the longest possible batch (``batch_tokens``) exceeds ``params.checkpointing_from_tokens``.

    It trades ~30% speed for activation memory: on a GPU memory is the scarce thing; on a CPU the embedded
    model's short samples fit without it, and long ones (activations grow with the length) would not."""
    import torch

    if params.gradient_checkpointing == "auto":
        return torch.cuda.is_available() or batch_tokens > params.checkpointing_from_tokens
    return params.gradient_checkpointing == "true"


def longest_batch(lengths: list[int], batch_size: int) -> int:
    """The most tokens one packed batch can hold: the ``batch_size`` longest samples together."""
    return sum(sorted(lengths, reverse=True)[:batch_size])


def use_liger(params: SFTParams) -> bool:
    """Liger kernels: ``params.liger`` true/false, or ``auto`` (the liger-kernel package and a CUDA GPU).
    ``true`` without them is a UserError naming the key."""
    import importlib.util

    import torch

    installed = importlib.util.find_spec("liger_kernel") is not None
    if params.liger == "auto":
        return installed and torch.cuda.is_available()
    if params.liger == "true" and not (installed and torch.cuda.is_available()):
        missing = "the liger-kernel package" if not installed else "a CUDA GPU"
        raise UserError(f"sft.liger: true needs the liger-kernel package (pip install liger-kernel) and a CUDA GPU; "
                        f"{missing} is missing here (use auto or false)")
    return params.liger == "true"
