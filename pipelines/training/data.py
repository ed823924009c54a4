"""Trajectories as training samples: chat-template tokenisation, assistant-only labels, packed batches."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipelines.core.datasets import DataSource, read_records
from pipelines.core.errors import UserError
from pipelines.llm.families import FAMILIES, family_of

log = logging.getLogger(__name__)
IGNORE = -100


def encode_sample(tokenizer, record: dict[str, Any]) -> dict[str, list[int]]:
    """Token ids and labels (assistant tokens only, others -100) of one trajectory record.

    The template's generation marks give the assistant tokens. In a family without an end-of-turn token
    (GLM-4.5) the assistant ends its turn by writing the next role token, so that token is trained too,
    and a conversation that ends with assistant output gets the family's end-of-text token, trained.
    """
    messages = [_for_template(m) for m in record["messages"]]
    out = tokenizer.apply_chat_template(messages, tools=record.get("tools") or None, tokenize=True,
                                        return_dict=True, return_assistant_tokens_mask=True)
    ids = list(out["input_ids"])
    mask = list(out["assistant_masks"])
    if not any(mask):
        raise ValueError("no assistant tokens to train on (does the template have generation marks?)")
    family = FAMILIES[family_of(tokenizer)]
    if family.hands_back:
        ids, mask = _hand_back(tokenizer, family, ids, mask)
    return {"input_ids": ids, "labels": [t if m else IGNORE for t, m in zip(ids, mask)]}


def _hand_back(tokenizer, family, ids: list[int], mask: list[int]) -> tuple[list[int], list[int]]:
    """The mask extended, after every run of assistant tokens, over the token that hands the turn back."""
    stops = {i for i in (_token_id(tokenizer, t) for t in family.stops) if i is not None}
    end = _token_id(tokenizer, family.end_of_text) if family.end_of_text else None
    end = end if end is not None else tokenizer.eos_token_id
    ids, mask = list(ids), list(mask)
    if mask[-1]:
        if end is None:
            raise ValueError(f"the tokenizer has no {family.end_of_text} token to end the last assistant turn with")
        ids.append(end)
        mask.append(0)
    ends = [i for i in range(len(ids) - 1) if mask[i] and not mask[i + 1]]
    for i in ends:
        if ids[i + 1] not in stops:
            raise ValueError(f"an assistant turn is followed by {tokenizer.convert_ids_to_tokens(ids[i + 1])!r}, "
                             f"which does not hand the turn back ({family.name} ends a turn with "
                             f"{' or '.join(family.stops)})")
        mask[i + 1] = 1
    return ids, mask


def _token_id(tokenizer, token: str) -> int | None:
    tid = tokenizer.convert_tokens_to_ids(token)
    return None if tid is None or (tid == tokenizer.unk_token_id and token != tokenizer.unk_token) else tid


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
