"""One CPU kernel set for training, so that machines of different CPU models train the same weights.

PyTorch picks its vectorised CPU kernels (norms, softmax, attention, the optimiser's updates) by what the
processor offers, and MKL picks its matrix-product kernels the same way. Reductions over 16-wide AVX-512
registers add in another order than over 8-wide AVX2 ones, so the same training on two CPU models ends
with weights that differ in the last bits. Measured on the default ``make repro`` sft (8 samples, 16
steps, LoRA, 2 threads, an AMD EPYC with AVX-512): the default AVX-512 kernels and the AVX2 ones wrote
different ``models/sft`` bytes (same final loss to 4 digits); AVX2 took 118 s against 115 s.

:func:`pin` asks for the AVX2 kernels (``ATEN_CPU_CAPABILITY=avx2``, ``MKL_CBWR=AVX2``) where the processor
has AVX2 and FMA, before torch is imported; both settings are read when the libraries load. A value the
user set is kept. It narrows the spread to one kernel set per library; what MKL runs on another vendor's
processor under ``MKL_CBWR=AVX2`` is MKL's own choice, so weights are promised equal on machines of the
same CPU model only (README, "Which stages are bit-identical"). ``MKL_CBWR=COMPATIBLE`` (SSE2 kernels,
vendor-independent) took 2.4 times as long and is left to the user.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

SETTINGS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}


def has_avx2_fma(cpuinfo: str | None = None) -> bool:
    """Whether the processor (``/proc/cpuinfo``'s flags, or ``cpuinfo``) offers AVX2 and FMA; False off x86."""
    if cpuinfo is None:
        if platform.machine().lower() not in ("x86_64", "amd64"):
            return False
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return "avx2" in flags and "fma" in flags


def pin(environ: dict[str, str] | None = None, cpuinfo: str | None = None) -> dict[str, str]:
    """Set the AVX2 kernel settings in ``environ`` (``os.environ``) where unset and the CPU has AVX2 and FMA.

    Returns the settings in effect ({} where nothing applies). Torch already imported in this process keeps
    the kernels it picked: then only processes started from here (``accelerate launch``) get the pin.
    """
    env = os.environ if environ is None else environ
    if not has_avx2_fma(cpuinfo):
        return {}
    for key, value in SETTINGS.items():
        env.setdefault(key, value)
    return {key: env[key] for key in SETTINGS}
