"""Facts about the machine a benchmark runs on: CPU, threads, load, and its measured matmul peak.

The peak is measured, not taken from a datasheet: large square matmuls (2048^3 by default), the
median of several runs, with every CPU matmul implementation PyTorch offers:

- `torch.matmul` (ATen's default BLAS: MKL for float32 on x86 builds, oneDNN for bfloat16);
- oneDNN directly (`torch.ops.mkldnn._linear_pointwise`), which uses AVX-512 kernels on CPUs where
  MKL falls back to AVX2 (AMD EPYC: MKL reaches about 40% of what oneDNN does there).

The machine's peak for a dtype is the best of these, so a program that uses the faster library can
never show more than 100% of it.
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import torch


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "n/a"


def machine_line() -> str:
    return (f"{cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads, load average {load_average()}")


def _median_seconds(fn, runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _onednn_ok() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def matmul_peaks(dtype: torch.dtype = torch.float32, n: int = 2048, runs: int = 7) -> dict[str, float]:
    """GFLOP/s of an n x n x n matmul in `dtype` per implementation (median of `runs`), plus
    'peak' = the best of them."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(dtype)
    b = torch.randn(n, n, generator=g).to(dtype)
    flops = 2.0 * n ** 3
    out = {"torch.matmul": flops / _median_seconds(lambda: torch.matmul(a, b), runs) / 1e9}
    if _onednn_ok():
        bt = b.t().contiguous()  # linear computes a @ weight.T
        lin = torch.ops.mkldnn._linear_pointwise
        try:
            err = (lin(a, bt, None, "none", [], "").float() - torch.matmul(a, b).float()).abs().max().item()
            scale = torch.matmul(a, b).float().abs().max().item()
            if err <= 1e-2 * scale:
                out["oneDNN"] = flops / _median_seconds(lambda: lin(a, bt, None, "none", [], ""), runs) / 1e9
        except RuntimeError:
            pass
    out["peak"] = max(out.values())
    return out


# Where the CPU has no native bf16, torch emulates it a few hundred times slower than float32: a
# 2048^3 matmul would take about a minute a run, so the emulated rate is measured on this size.
EMULATED_BF16_N = 256


def peak_table(runs: int = 7, n: int = 2048) -> dict[str, dict[str, float]]:
    from kinema.cpu_features import cpu_has_native_bf16

    table = {"float32": matmul_peaks(torch.float32, n, runs)}
    if cpu_has_native_bf16():
        table["bfloat16"] = matmul_peaks(torch.bfloat16, n, runs)
    else:
        table["bfloat16"] = {**matmul_peaks(torch.bfloat16, EMULATED_BF16_N, runs), "n": EMULATED_BF16_N}
    return table


def format_peaks(peaks: dict[str, dict[str, float]], n: int = 2048) -> list[str]:
    lines = []
    for name, d in peaks.items():
        parts = ", ".join(f"{k} {v:.2g}" if v < 10 else f"{k} {v:.0f}" for k, v in d.items()
                          if k not in ("peak", "n"))
        size = int(d.get("n", n))
        note = "; emulated: this CPU has no native bf16" if "n" in d else ""
        peak = f"{d['peak']:7.2f}" if d["peak"] < 10 else f"{d['peak']:7.0f}"
        lines.append(f"  {name:<9} peak {peak} GFLOP/s   ({size}^3 matmul, median; {parts}{note})")
    return lines
