"""Decoding-step matrix products through MKL's packed GEMM, on CPU.

A decoding step multiplies one row per running request by every weight matrix of the model. MKL's
ordinary sgemm serves so few rows badly: on the 2-core reference machine 8 rows through the
embedded model's 30 layers take 43 ms against 25 ms for one row, and its 49,152 x 576 output
projection 18 ms against 6 ms, although every row count reads the same weights once. MKL's packed
GEMM, with each weight reordered once for a fixed number of rows (``cblas_sgemm_pack``, which torch
exposes as ``torch.ops.mkl._mkl_linear``), brings 8 rows down to 30 ms and 7 ms.

:class:`PackedLinears` packs every large ``nn.Linear`` of a model for ``rows`` rows and reroutes
its ``forward`` while :meth:`PackedLinears.active` is on: a product of exactly ``rows`` rows takes
the packed weights; one of ``rows // 2`` rows or more is padded to ``rows`` with zero rows (each
output row depends on its own input row alone, and the padded product still costs less than the
unpacked one from 4 of 8 rows up); fewer rows, and every call while inactive, run the module's own
``forward``. Packing costs a second copy of the weights in memory; the packed copy is taken at
install time, so weights changed afterwards (an adapter merged into them) must be packed again.

Like sgemm at 8 rows against sgemm at 1 row, the packed product is not bitwise the unpacked one;
it agrees to float32 rounding, and greedy outputs are checked against ``model.generate`` token for
token by the tests and ``benchmarks/local_inference.py``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

MIN_WEIGHTS = 1 << 16  # smaller matrices (LoRA factors) stay in cache, where packing gains nothing


def available(device: str = "cpu") -> bool:
    """Whether this torch build has MKL's packed GEMM for ``device``."""
    return (device == "cpu" and torch.backends.mkl.is_available()
            and hasattr(torch.ops.mkl, "_mkl_linear") and hasattr(torch.ops.mkl, "_mkl_reorder_linear_weight"))


class PackedLinears:
    """The large float32 ``nn.Linear`` modules of ``model``, packed for products of ``rows`` rows."""

    def __init__(self, model: torch.nn.Module, rows: int, min_weights: int = MIN_WEIGHTS):
        self.rows = rows
        self.min_rows = max(1, rows // 2)
        self.packed_bytes = 0
        self.modules = 0
        self._on = False
        for module in model.modules():
            if (type(module) is torch.nn.Linear and module.weight.dtype == torch.float32
                    and module.weight.device.type == "cpu" and module.weight.numel() >= min_weights):
                self._reroute(module)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Packed products inside the block (the caller holds the model's lock)."""
        self._on = True
        try:
            yield
        finally:
            self._on = False

    def _reroute(self, module: torch.nn.Linear) -> None:
        weight = module.weight.detach()
        with torch.no_grad():
            packed = torch.ops.mkl._mkl_reorder_linear_weight(weight, self.rows)
        self.packed_bytes += packed.numel() * packed.element_size()
        self.modules += 1
        own, bias, rows, min_rows = module.forward, module.bias, self.rows, self.min_rows

        def forward(x: torch.Tensor) -> torch.Tensor:
            if not self._on or x.dtype != torch.float32:
                return own(x)
            flat = x.reshape(-1, x.shape[-1])
            n = flat.shape[0]
            if n == rows:
                out = torch.ops.mkl._mkl_linear(flat.contiguous(), packed, weight, bias, rows)
            elif min_rows <= n < rows:
                padded = flat.new_zeros(rows, flat.shape[1])
                padded[:n] = flat
                out = torch.ops.mkl._mkl_linear(padded, packed, weight, bias, rows)[:n]
            else:
                return own(x)
            return out.view(*x.shape[:-1], out.shape[-1])

        module.forward = forward
