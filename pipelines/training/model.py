"""The model to train: the base weights, LoRA-wrapped unless full fine-tuning, and the precision to use."""

from __future__ import annotations

from pathlib import Path

from pipelines.core.params import SFTParams


def load_model(base: Path, params: SFTParams):
    """The base model, wrapped in LoRA unless ``method: full``; gradient checkpointing per params."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if use_bf16(params) else torch.float32
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, attn_implementation="sdpa")
    model.config.use_cache = False  # packed batches are only kept apart when transformers sees no cache
    if params.method == "lora":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=params.lora.r, lora_alpha=params.lora.alpha, lora_dropout=params.lora.dropout,
                            target_modules=params.lora.target_modules, task_type="CAUSAL_LM")
        model = get_peft_model(model, config)
    return model


def use_bf16(params: SFTParams) -> bool:
    import torch

    if params.bf16 == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return params.bf16 == "true"


def use_checkpointing(params: SFTParams) -> bool:
    import torch

    if params.gradient_checkpointing == "auto":  # it trades ~30% speed for memory: worth it on a GPU only
        return torch.cuda.is_available()
    return params.gradient_checkpointing == "true"
