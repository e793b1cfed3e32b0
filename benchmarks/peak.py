"""Measured matmul peak of this machine in float32 and bfloat16 (see _machine.py).

    python benchmarks/peak.py [--threads N] [--runs 7] [--n 2048]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import format_peaks, machine_line, peak_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--n", type=int, default=2048)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_line())
    for line in format_peaks(peak_table(args.runs, args.n), args.n):
        print(line)


if __name__ == "__main__":
    main()
