"""Keep freed memory in the process, so large tensors do not cost page faults on every step.

glibc's malloc serves large blocks (from 128 KiB, a threshold it raises as they are freed) with
fresh `mmap`s and trims the heap's free top back to the kernel. A denoising step allocates and frees
the same few-MiB activations dozens of times, so each one comes back as fresh pages that the kernel
zero-fills on first touch: on a 2-core AVX2 EPYC, ~10,000 page faults per transformer forward
(`benchmarks/allocator.py`). Raising both thresholds keeps freed blocks for reuse: the process then
holds its high-water mark (what its largest step needed) instead of returning it between steps.

`keep_freed_memory()` is called when a Pipeline or a Trainer is made. It changes the whole process
and only on glibc; `KINEMA_KEEP_FREED_MEMORY=0` leaves the allocator as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
# Blocks below this come from the heap and are reused; larger ones (a long clip's decoder
# activations) are still mapped and unmapped. Where glibc refuses the value (older versions cap it
# at half their per-thread heap size), 32 MiB, the ceiling of glibc's own adaptive threshold, is set.
MMAP_THRESHOLD = 512 << 20
MMAP_THRESHOLD_OLD_GLIBC = 32 << 20
TRIM_THRESHOLD = 1 << 30

_applied: dict | None = None


def kept_setting() -> dict | None:
    """What keep_freed_memory() set in this process; None before it was called."""
    return _applied


def keep_freed_memory() -> dict:
    """Raise glibc's mmap and trim thresholds once per process; returns what was set (empty where
    nothing was: not glibc, or switched off by KINEMA_KEEP_FREED_MEMORY=0)."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = {}
    if os.environ.get("KINEMA_KEEP_FREED_MEMORY", "1").strip().lower() in ("0", "false", "no", "off"):
        return _applied
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return _applied
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return _applied
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    for threshold in (MMAP_THRESHOLD, MMAP_THRESHOLD_OLD_GLIBC):
        if mallopt(_M_MMAP_THRESHOLD, threshold) == 1:
            _applied["mmap_threshold"] = threshold
            break
    if mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1:
        _applied["trim_threshold"] = TRIM_THRESHOLD
    return _applied
