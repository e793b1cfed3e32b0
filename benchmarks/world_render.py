"""How fast the procedural world renders, per training bucket, and how fast the training stream
(render, caption, batch) delivers the `tiny` transformer preset's buckets, in clips/s on one core.

The loader processes that draw the world bound streaming training and latent-cache builds on a
GPU machine (the GPU trains and encodes far faster than the CPU draws), so these are the figures
to watch when the world, its renderer or the stream changes.

    python benchmarks/world_render.py [--n 200] [--batches 40]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from kinema.data.world_stream import WorldStream
from kinema.train.config import preset
from kinema.world.render import render
from kinema.world.sample import sample_spec

BUCKETS = ((128, 128, 25), (224, 128, 25), (176, 96, 25), (128, 128, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="clips per bucket")
    parser.add_argument("--batches", type=int, default=40, help="stream batches to time")
    args = parser.parse_args()
    for w, h, t in BUCKETS:
        rng = np.random.default_rng(0)
        specs = [sample_spec(rng, width=w, height=h, num_frames=t) for _ in range(args.n)]
        start = time.perf_counter()
        for spec in specs:
            render(spec)
        seconds = time.perf_counter() - start
        print(f"render {w}x{h}, {t:2d} frames: {seconds / args.n * 1e3:6.2f} ms a clip, {args.n / seconds:7.1f} clips/s")
    cfg = preset("tiny", "dit")
    stream = iter(WorldStream(buckets=cfg.data.buckets, batch_size=cfg.optim.batch_size, uint8=True,
                              interleave_workers=True))
    next(stream)
    start, clips = time.perf_counter(), 0
    for _ in range(args.batches):
        clips += next(stream)["video"].shape[0]
    seconds = time.perf_counter() - start
    print(f"training stream, tiny transformer buckets {cfg.data.buckets}, batch {cfg.optim.batch_size}: "
          f"{clips / seconds:.1f} clips/s")


if __name__ == "__main__":
    main()
