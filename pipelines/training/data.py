"""Trajectories as training samples: chat-template tokenisation, assistant-only labels, packed batches."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipelines.core.datasets import DataSource, read_records
from pipelines.core.errors import UserError

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


def load_training_set(data: Path | DataSource | list[DataSource], tokenizer, max_length: int,
                      max_samples: int = 0) -> tuple[list[dict], list[str]]:
    """Encoded samples and the messages about samples dropped for length, from a trajectory file or the
    sources of :func:`pipelines.core.datasets.resolve_sources` (read as curate reads them)."""
    sources = data if isinstance(data, list) else [data]
    samples, dropped = [], []
    for source in sources:
        for name, lineno, record in read_records(source):
            if not isinstance(record, dict) or not record.get("messages"):
                raise UserError(f"{name}:{lineno}: not a trajectory record (no 'messages')")
            try:
                encoded = encode_sample(tokenizer, record)
            except ValueError as exc:
                raise UserError(f"{name}:{lineno}: {exc}") from None
            n = len(encoded["input_ids"])
            if n > max_length:
                dropped.append(f"{name}:{lineno}: {n} tokens > sft.max_length {max_length}; dropped, not truncated")
                continue
            samples.append(encoded)
            if max_samples and len(samples) >= max_samples:
                break
        if max_samples and len(samples) >= max_samples:
            break
    for message in dropped:
        log.warning(message)
    if not samples:
        names = ", ".join(s.name if isinstance(s, DataSource) else str(s) for s in sources)
        raise UserError(f"{names}: no trainable samples ({len(dropped)} over max_length); see curate's report")
    return samples, dropped
