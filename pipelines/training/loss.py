"""The loss on assistant targets only, from the logits of those positions alone (the collator says which)."""

from __future__ import annotations

from pipelines.training.data import IGNORE


class TokenCounter:
    """Wraps the collator to count the tokens (and assistant tokens) each step trains on."""

    def __init__(self, collator):
        self.collator = collator
        self.tokens = 0
        self.target_tokens = 0

    def __call__(self, features):
        batch = self.collator(features)
        self.tokens += int(batch["input_ids"].numel())
        self.target_tokens += int((batch["labels"] != IGNORE).sum())
        batch["logits_to_keep"] = target_positions(batch["labels"])
        return batch


def target_positions(labels):
    """Positions (in the one packed row) whose next token is trained on: the only logits the loss needs."""
    return (labels[0, 1:] != IGNORE).nonzero().squeeze(-1)


def target_loss(outputs, labels, num_items_in_batch=None):
    """Summed cross-entropy over the kept logits, per target token of the (accumulated) batch."""
    import torch.nn.functional as F

    shifted = labels[0, 1:]
    targets = shifted[shifted != IGNORE].to(outputs.logits.device)
    loss = F.cross_entropy(outputs.logits[0].float(), targets, reduction="sum")
    return loss / (num_items_in_batch if num_items_in_batch is not None else max(len(targets), 1))
