"""The loss on assistant targets only: from the logits of those positions alone (the collator says which), or,
chunked, from their hidden states through the output layer a few thousand positions at a time."""

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


def shifted_targets(labels, device):
    """The next-token targets of the kept positions, in their order."""
    shifted = labels[0, 1:]
    return shifted[shifted != IGNORE].to(device)


def target_loss(outputs, labels, num_items_in_batch=None):
    """Summed cross-entropy over the kept logits, per target token of the (accumulated) batch."""
    import torch.nn.functional as F

    targets = shifted_targets(labels, outputs.logits.device)
    loss = F.cross_entropy(outputs.logits[0].float(), targets, reduction="sum")
    return loss / (num_items_in_batch if num_items_in_batch is not None else max(len(targets), 1))


class ChunkedTargetLoss:
    """The same loss as :func:`target_loss`, without the ``targets x vocabulary`` logits.

    A forward pre-hook on the model's output layer takes the hidden states it is given (those of the kept
    positions, ``logits_to_keep``) and hands the layer an empty slice instead, so the model returns no logits.
    The loss then puts the hidden states through the layer's weight ``chunk_tokens`` positions at a time, each
    chunk under ``torch.utils.checkpoint``: its logits are freed after its cross-entropy and recomputed in
    backward, so at most one chunk's logits (and their gradient) exist at once. With no more targets than one
    chunk it is the unchunked computation itself (same operations, same bits). ``fused``: Liger's fused
    linear cross-entropy takes the place of the chunks (GPU). Call :meth:`remove` when training is done.
    """

    def __init__(self, model, chunk_tokens: int, fused: bool = False):
        import torch

        self.head = model.get_output_embeddings()
        if not isinstance(self.head, torch.nn.Linear) or type(self.head).forward is not torch.nn.Linear.forward:
            from pipelines.core.errors import UserError

            raise UserError(f"sft.loss_chunk_tokens: the model's output layer is a {type(self.head).__name__}, not "
                            "a plain Linear (LoRA on lm_head?); set sft.loss_chunk_tokens: 0")
        self.chunk_tokens = chunk_tokens
        self.fused = fused
        self.hidden = None
        self._handle = self.head.register_forward_pre_hook(self._take_hidden)

    def _take_hidden(self, module, args):
        self.hidden = args[0]
        return (args[0][:, :0],)

    def remove(self) -> None:
        """Give the output layer back its own input (for generation after training)."""
        self._handle.remove()

    def __call__(self, outputs, labels, num_items_in_batch=None):
        hidden, self.hidden = self.hidden, None
        if hidden is None:
            raise RuntimeError("ChunkedTargetLoss: the model's output layer was not called in this forward")
        hidden = hidden[0]
        targets = shifted_targets(labels, hidden.device)
        if len(targets) != hidden.shape[0]:
            raise RuntimeError(f"ChunkedTargetLoss: {hidden.shape[0]} kept positions for {len(targets)} targets "
                               "(is logits_to_keep the target positions?)")
        total = chunked_cross_entropy(hidden, self.head.weight, self.head.bias, targets, self.chunk_tokens,
                                      fused=self.fused)
        return total / (num_items_in_batch if num_items_in_batch is not None else max(len(targets), 1))


def chunked_cross_entropy(hidden, weight, bias, targets, chunk_tokens: int, fused: bool = False):
    """Summed cross-entropy of ``hidden @ weight.T + bias`` against ``targets``, ``chunk_tokens`` rows at a time,
    each chunk's logits recomputed in backward instead of kept."""
    from torch.utils.checkpoint import checkpoint

    if fused:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        return LigerFusedLinearCrossEntropyLoss(reduction="sum")(weight, hidden, targets, bias)
    if hidden.shape[0] <= chunk_tokens:
        return _chunk_loss(hidden, weight, bias, targets)
    total = None
    for start in range(0, hidden.shape[0], chunk_tokens):
        part = checkpoint(_chunk_loss, hidden[start:start + chunk_tokens], weight, bias,
                          targets[start:start + chunk_tokens], use_reentrant=False)
        total = part if total is None else total + part
    return total


def _chunk_loss(hidden, weight, bias, targets):
    import torch.nn.functional as F

    return F.cross_entropy(F.linear(hidden, weight, bias).float(), targets, reduction="sum")
