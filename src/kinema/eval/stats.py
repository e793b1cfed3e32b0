"""Intervals for the benchmark's figures."""

from __future__ import annotations

import math

import numpy as np


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(values, z: float = 1.96) -> tuple[float, float, float] | tuple[None, None, None]:
    """Mean and its 95% normal interval; None for each when there are no values (a report's JSON
    stays strict, where NaN would not)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return (None, None, None)
    m = float(v.mean())
    half = z * float(v.std(ddof=1)) / math.sqrt(v.size) if v.size > 1 else 0.0
    return (m, m - half, m + half)
