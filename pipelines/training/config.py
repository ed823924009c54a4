"""Params of sft."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from pipelines.core.config import Strict

#: LIMI's released training scripts (``sft.preset: limi``); keys set beside the preset win. The global batch of 64
#: is ``batch_size x grad_accum x num_processes``: the preset sets ``grad_accum`` to make it so, unless given.
LIMI_GLOBAL_BATCH = 64
LIMI_PRESET: dict[str, Any] = {
    "method": "full", "epochs": 4, "repeat": 2, "learning_rate": 1.0e-5, "min_lr_ratio": 0.1, "batch_size": 1,
    "max_length": 131072, "loss_reduction": "token", "attn_implementation": "auto",
}
PRESETS: dict[str, dict[str, Any]] = {"limi": LIMI_PRESET}
#: The longest ``sft.max_length`` accepted (LIMI's 128k context).
MAX_LENGTH = 131072
#: ``gradient_checkpointing: auto`` on a CPU turns it on above this many tokens per batch. Without it the embedded
#: model (30 layers) keeps about 2 MB of activations per token (~67 KB per layer and token, benchmarks/sft_context.py):
#: 8k tokens already take ~16 GB, the most a CPU machine here can spare, and 32k would take 64 GB. At or below it
#: (the default sft.max_length) the default pipeline keeps its speed (checkpointing recomputes every layer: ~30% more
#: time); above it, activations with checkpointing are one layer's plus each layer's input (~70 KB per token).
CHECKPOINTING_FROM_TOKENS = 8192

class LoraParams(Strict):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: str | list[str] = "all-linear"


class SFTParams(Strict):
    """Fine-tuning; LIMI's optimiser settings are the defaults where they apply.

    ``preset: limi`` fills every key of :data:`LIMI_PRESET` that the group does not set itself, and ``grad_accum``
    so that ``batch_size x grad_accum x num_processes`` is LIMI's global batch of 64.
    """

    preset: Literal["limi"] | None = Field(
        None, description="limi: LIMI's released training recipe for every key this group leaves unset")
    method: Literal["lora", "full"] = "lora"
    lora: LoraParams = LoraParams()
    epochs: int = Field(2, ge=1)
    repeat: int = Field(1, ge=1, description="each sample this many times an epoch (LIMI duplicated its data twice)")
    max_steps: int = Field(0, ge=0, description="stop after this many steps (0 = run the epochs)")
    learning_rate: float = Field(2e-4, gt=0, description="peak; LIMI used 1e-5 for full fine-tuning of GLM-4.5")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine decays to this share of the peak")
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.1, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.98)
    max_grad_norm: float = Field(1.0, gt=0)
    batch_size: int = Field(1, ge=1, description="samples per batch; >1 packs them padding-free (flattened, per-sample position ids)")
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(8192, ge=128, le=MAX_LENGTH,
                            description="longer samples are dropped with a message, never truncated")
    loss_reduction: Literal["token"] = Field(
        "token", description="token: cross-entropy summed over the assistant tokens of the whole (accumulated) "
        "batch, divided by their count, so a long sample weighs by its length (LIMI's)")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2", "flex_attention", "auto"] = Field(
        "sdpa", description="attention kernel; auto: flash_attention_2 where the flash-attn package and a CUDA GPU "
        "are there, else sdpa; flex_attention needs torch's torch.nn.attention.flex_attention")
    loss_chunk_tokens: int = Field(
        4096, ge=0, description="the loss goes through the output layer this many target positions at a time, "
        "recomputed in backward, so no targets x vocabulary logits exist (0 = all target positions at once)")
    liger: Literal["auto", "true", "false"] = Field(
        "auto", description="Liger kernels (the liger-kernel package, CUDA): auto = where installed and a GPU is "
        "there; true without them is an error")
    save_steps: int = Field(10, ge=1)
    seed: int = 0
    gradient_checkpointing: Literal["auto", "true", "false"] = Field(
        "auto", description="auto: on with a GPU; on a CPU only when a batch can hold more than "
        "checkpointing_from_tokens tokens")
    checkpointing_from_tokens: int = Field(
        CHECKPOINTING_FROM_TOKENS, ge=1, description="gradient_checkpointing auto on a CPU: on from this many "
        "tokens in the longest possible batch (batch_size longest samples)")
    bf16: Literal["auto", "true", "false"] = "auto"
    num_processes: int = Field(1, ge=1, description="> 1 relaunches under `accelerate launch`")
    accelerate_config: str | None = Field(
        None, description="num_processes > 1: the accelerate config file to launch with (configs/accelerate/fsdp.yaml, "
        "configs/accelerate/zero3.yaml; relative to the project root); unset: accelerate's default config (DDP)")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """Fill the preset's values under the keys the group leaves unset, and ``grad_accum`` for its global batch."""
        preset = PRESETS.get(data.get("preset")) if isinstance(data, dict) and isinstance(data.get("preset"), str) \
            else None
        if preset is None:
            return data  # no preset, or an unknown one (the field's own check names the allowed values)
        merged = {**preset, **data}
        if "grad_accum" not in data:
            per_step = _positive_int(merged.get("batch_size", 1)) * _positive_int(merged.get("num_processes", 1))
            if LIMI_GLOBAL_BATCH % per_step:
                raise ValueError(f"preset: {data['preset']} needs batch_size x num_processes ({per_step}) to divide its "
                                 f"global batch of {LIMI_GLOBAL_BATCH}; set grad_accum yourself")
            merged["grad_accum"] = LIMI_GLOBAL_BATCH // per_step
        if merged == data:  # a preset beside a full group changes nothing: surely not what was meant
            raise ValueError(f"preset: {data['preset']} has no effect: the group writes every key it sets "
                             f"({', '.join(sorted([*preset, 'grad_accum']))}); leave out those the preset should set")
        return merged


def _positive_int(value: Any) -> int:
    """``value`` where it is a positive integer, else 1 (the field's own check then names the bad value)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1
