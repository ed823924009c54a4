"""Params of sft."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipelines.core.config import Strict

class LoraParams(Strict):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: str | list[str] = "all-linear"


class SFTParams(Strict):
    """Fine-tuning; LIMI's optimiser settings are the defaults where they apply."""

    method: Literal["lora", "full"] = "lora"
    lora: LoraParams = LoraParams()
    epochs: int = Field(2, ge=1)
    max_steps: int = Field(0, ge=0, description="stop after this many steps (0 = run the epochs)")
    learning_rate: float = Field(2e-4, gt=0, description="peak; LIMI used 1e-5 for full fine-tuning of GLM-4.5")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine decays to this share of the peak")
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.1, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.98)
    max_grad_norm: float = Field(1.0, gt=0)
    batch_size: int = Field(1, ge=1, description="samples per batch; >1 packs them padding-free (flattened, per-sample position ids)")
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(8192, ge=128, description="longer samples are dropped with a message, never truncated")
    save_steps: int = Field(10, ge=1)
    seed: int = 0
    gradient_checkpointing: Literal["auto", "true", "false"] = "auto"
    bf16: Literal["auto", "true", "false"] = "auto"
    num_processes: int = Field(1, ge=1, description="> 1 relaunches under `accelerate launch`")
