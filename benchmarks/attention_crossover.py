"""Where the CPU fast path's self-attention should switch from one matmul pair per head to
torch's fused scaled_dot_product_attention (kinema.models.dit.SDPA_MIN_TOKENS with oneDNN's
matmuls, on an AVX-512 CPU; SDPA_MIN_TOKENS_TORCH_MATMULS with torch's, elsewhere): one forward of
the shipped transformer (batch 2, as with guidance) at several clip sizes, both ways, interleaved.
`--dtype bfloat16` measures the same under CPU bf16 autocast, where the fast path's matmuls run in
bf16 and the threshold is SDPA_MIN_TOKENS_BF16.

    python benchmarks/attention_crossover.py [--runs 5] [--threads N] [--dtype float32|bfloat16]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import kinema.models.dit as dit
from kinema.models.dit import DiTConfig, VideoDiT
from kinema.pipeline import DEFAULT_MODEL_DIR, _load_component

# (label, latent frames, latent height, latent width): 8x space, 4x time, patch 1x2x2
SIZES = [("128x128, 2 s", 7, 16, 16), ("224x128, 2 s", 7, 16, 28), ("128x128, 4 s", 13, 16, 16),
         ("224x128, 4 s", 13, 16, 28), ("256x256, 2 s", 7, 32, 32), ("256x256, 4 s", 13, 32, 32)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    args = ap.parse_args()
    bf16 = args.dtype == "bfloat16"
    knob = ("SDPA_MIN_TOKENS_BF16" if bf16 else
            "SDPA_MIN_TOKENS" if dit._onednn_matmuls() else "SDPA_MIN_TOKENS_TORCH_MATMULS")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = _load_component(DEFAULT_MODEL_DIR, "transformer", DiTConfig, VideoDiT).eval()
    C = model.config.in_channels
    print(f"one forward of the shipped transformer, batch 2, {args.dtype} matmuls, {torch.get_num_threads()} threads, "
          f"medians of {args.runs} interleaved runs; threshold now {getattr(dit, knob)} tokens ({knob})")
    print(f"{'clip':<14} {'tokens':>6} {'per-head matmuls':>17} {'fused SDPA':>11} {'SDPA / per-head':>16}")
    g = torch.Generator().manual_seed(0)
    states = torch.randn(2, 32, model.config.text_dim, generator=g)
    mask = torch.ones(2, 32, dtype=torch.bool)
    old = getattr(dit, knob)
    for label, t, h, w in SIZES:
        x = torch.randn(2, C, t, h, w, generator=g)
        ts = torch.full((2, t), 0.5)
        tokens = t * (h // 2) * (w // 2)
        times = {"per-head": [], "sdpa": []}
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for i in range(args.runs + 1):
                for way, threshold in (("per-head", 10**9), ("sdpa", 1)):
                    setattr(dit, knob, threshold)
                    t0 = time.perf_counter()
                    model(x, ts, states, mask)
                    if i:  # the first round warms up
                        times[way].append(time.perf_counter() - t0)
        setattr(dit, knob, old)
        a, b = statistics.median(times["per-head"]), statistics.median(times["sdpa"])
        print(f"{label:<14} {tokens:>6} {a * 1e3:>14.0f} ms {b * 1e3:>8.0f} ms {b / a:>16.2f}")


if __name__ == "__main__":
    main()
