"""How fast the procedural world renders, per training bucket (clips/s on one core).

Rendering bounds how fast a latent cache builds on a GPU machine (the VAE encodes far faster
than the CPU draws), so this is the figure to watch when the world or its renderer changes.

    python benchmarks/world_render.py [--n 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from kinema.world.render import render
from kinema.world.sample import sample_spec

BUCKETS = ((128, 128, 25), (224, 128, 25), (176, 96, 25), (128, 128, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="clips per bucket")
    args = parser.parse_args()
    for w, h, t in BUCKETS:
        rng = np.random.default_rng(0)
        specs = [sample_spec(rng, width=w, height=h, num_frames=t) for _ in range(args.n)]
        start = time.perf_counter()
        for spec in specs:
            render(spec)
        seconds = time.perf_counter() - start
        print(f"{w}x{h}, {t:2d} frames: {seconds / args.n * 1e3:6.2f} ms a clip, {args.n / seconds:7.1f} clips/s")


if __name__ == "__main__":
    main()
