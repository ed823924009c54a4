"""Trajectories as training samples: chat-template tokenisation, assistant-only labels, packed batches."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipelines.core.errors import UserError
from pipelines.core.schema import read_jsonl

log = logging.getLogger(__name__)
IGNORE = -100


def encode_sample(tokenizer, record: dict[str, Any]) -> dict[str, list[int]]:
    """Token ids and labels (assistant tokens only, others -100) of one trajectory record."""
    messages = [_for_template(m) for m in record["messages"]]
    out = tokenizer.apply_chat_template(messages, tools=record.get("tools") or None, tokenize=True,
                                        return_dict=True, return_assistant_tokens_mask=True)
    ids = list(out["input_ids"])
    mask = list(out["assistant_masks"])
    if not any(mask):
        raise ValueError("no assistant tokens to train on (does the template have generation marks?)")
    return {"input_ids": ids, "labels": [t if m else IGNORE for t, m in zip(ids, mask)]}


def _for_template(message: dict[str, Any]) -> dict[str, Any]:
    """Drop keys the template does not read; ``None`` content becomes empty text."""
    msg = {k: v for k, v in message.items() if k in ("role", "content", "tool_calls", "tool_call_id", "reasoning_content")}
    if msg.get("content") is None:
        msg["content"] = ""
    return msg


def load_training_set(path: Path, tokenizer, max_length: int, max_samples: int = 0) -> tuple[list[dict], list[str]]:
    """Encoded samples and the messages about samples dropped for length."""
    samples, dropped = [], []
    for lineno, record in read_jsonl(path):
        if not isinstance(record, dict) or "messages" not in record:
            raise UserError(f"{path}:{lineno}: not a trajectory record (no 'messages')")
        try:
            encoded = encode_sample(tokenizer, record)
        except ValueError as exc:
            raise UserError(f"{path}:{lineno}: {exc}") from None
        n = len(encoded["input_ids"])
        if n > max_length:
            dropped.append(f"{path}:{lineno}: {n} tokens > sft.max_length {max_length}; dropped, not truncated")
            continue
        samples.append(encoded)
        if max_samples and len(samples) >= max_samples:
            break
    for message in dropped:
        log.warning(message)
    if not samples:
        raise UserError(f"{path}: no trainable samples ({len(dropped)} over max_length); see curate's report")
    return samples, dropped
