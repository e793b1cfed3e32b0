"""What this CPU can do fast, as the precision choices need it.

bf16 is only worth asking for where oneDNN has native bf16 instructions (AVX512-BF16 or AMX);
elsewhere (AVX2 laptops and servers) torch emulates it, about a hundred times slower than fp32 or
worse (an AVX2 EPYC, `benchmarks/peak.py`: 97–120 GFLOP/s fp32; bf16 1.2 GFLOP/s on a 256³ matmul,
0.27 on a 2048³ one).
"""

from __future__ import annotations

import functools

import torch

# why bf16 is refused (training) or warned about (generation) on such a CPU; callers add the fix
BF16_EMULATED = ("this CPU has no native bf16 (no AVX512-BF16 or AMX), so torch emulates it, about a hundred "
                 "times slower than fp32 or worse")


@functools.cache  # the hardware does not change while the process runs
def cpu_has_native_bf16() -> bool:
    """Whether oneDNN on this CPU runs bf16 natively (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@functools.cache
def cpu_has_avx512() -> bool:
    """Whether torch dispatches to AVX-512 kernels on this CPU (AMX CPUs included)."""
    return torch.backends.cpu.get_cpu_capability().startswith("AVX512")
