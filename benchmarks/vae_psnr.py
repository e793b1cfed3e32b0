"""Reconstruction quality of a model's autoencoder on world clips (DESIGN §2 target: PSNR ≥ 32 dB
on held-out clips): encode and decode N clips of each split and print PSNR per split.

    python benchmarks/vae_psnr.py [--model PATH] [--n 50] [--size 128x128] [--frames 25]
"""

from __future__ import annotations

import argparse
import math
import statistics

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None,
                    help="pipeline folder or VAE folder (OUT/final of `kinema train vae`; default: the shipped kinema-tiny)")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--size", default="128x128")
    ap.add_argument("--frames", type=int, default=25)
    args = ap.parse_args()

    from kinema.pipeline import Pipeline
    from kinema.train.components import load_vae
    from kinema.world import render_video, sample_specs

    w, h = (int(v) for v in args.size.split("x"))
    vae = load_vae(args.model) if args.model else Pipeline.from_pretrained().vae
    vae.eval()
    print(f"autoencoder reconstruction, {args.n} clips per split, {w}x{h}, {args.frames} frames")
    for split in ("train", "heldout"):
        values = []
        for spec in sample_specs(args.n, seed=4242, split=split, width=w, height=h, num_frames=args.frames):
            x = render_video(spec).to_tensor()[None]
            with torch.no_grad():
                y = vae.decode(vae.encode(x)).clamp(-1, 1)
            mse = float(((y - x) ** 2).mean()) / 4.0  # [-1, 1] -> [0, 1] scale
            values.append(10 * math.log10(1.0 / max(mse, 1e-12)))
        print(f"  {split:<8} PSNR median {statistics.median(values):6.2f} dB, mean {statistics.mean(values):6.2f} dB, "
              f"min {min(values):6.2f} dB   (target ≥ 32 dB on held-out)")


if __name__ == "__main__":
    main()
