"""What this CPU can do fast, as the precision choices need it.

bf16 is only worth asking for where oneDNN has native bf16 instructions (AVX512-BF16 or AMX);
elsewhere (AVX2 laptops and servers) torch emulates it, several hundred times slower than fp32
(`benchmarks/peak.py` on an AVX2 EPYC: 118 GFLOP/s fp32, 0.27 GFLOP/s bf16 for a 2048² matmul).
"""

from __future__ import annotations

import torch


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN on this CPU runs bf16 natively (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles that torch can use (False where torch cannot tell)."""
    try:
        return bool(torch._C._cpu._init_amx())
    except (AttributeError, RuntimeError):
        return False
