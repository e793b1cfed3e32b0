"""Speed and memory of `kinema generate` with the shipped model (DESIGN §5).

Runs the whole job in a fresh process per repetition (import, load, text, denoise, decode,
write) and prints the stage breakdown, the whole-process wall time, the real-time factor
(clip length / wall time) and peak resident memory.

    python benchmarks/generate.py [--model PATH] [--runs 3] [--size 128x128] [--seconds 2] [--fps 12]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import torch
from kinema.pipeline import Pipeline
cfg = json.loads(sys.argv[1])
t_import = time.perf_counter() - t0
t = time.perf_counter()
pipe = Pipeline.from_pretrained(cfg["model"])
t_load = time.perf_counter() - t
video = pipe.generate(cfg["prompt"], seconds=cfg["seconds"], size=cfg["size"], fps=cfg["fps"],
                      steps=cfg["steps"], seed=0, progress=False)
t = time.perf_counter()
video.save(cfg["out"])
t_write = time.perf_counter() - t
stages = {"import": t_import, "load": t_load, **pipe.last_timings, "write": t_write}
stages["total_in_process"] = time.perf_counter() - t0
print(json.dumps({"stages": stages, "frames": video.num_frames, "fps": video.fps,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "threads": torch.get_num_threads()}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size", default="128x128")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--fps", type=float, default=12.0)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--prompt", default="a large red circle moves right on a navy background")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            cfg = dict(model=args.model, prompt=args.prompt, seconds=args.seconds, size=args.size, fps=args.fps,
                       steps=args.steps, out=str(Path(tmp) / f"bench_{i}.mp4"))
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], capture_output=True, text=True)
            wall = time.perf_counter() - t
            if proc.returncode != 0:
                sys.exit(f"run {i} failed:\n{proc.stderr[-2000:]}")
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            res["wall"] = wall
            results.append(res)
    clip = results[0]["frames"] / results[0]["fps"]
    print(f"kinema generate benchmark: {args.size}, {results[0]['frames']} frames at {results[0]['fps']:g} fps "
          f"({clip:.2f} s clip), {results[0]['threads']} torch threads, median of {args.runs} fresh processes")
    stages = results[0]["stages"].keys()
    for s in stages:
        print(f"  {s:<18} {statistics.median(r['stages'][s] for r in results):7.3f} s")
    wall = statistics.median(r["wall"] for r in results)
    print(f"  {'whole process':<18} {wall:7.3f} s   (target ≤ 10 s)")
    print(f"  real-time factor   {clip / wall:7.2f} x  (clip seconds per wall second; ≥ 1 is faster than real time)")
    print(f"  peak memory        {max(r['peak_rss_mb'] for r in results):7.0f} MB  (target ≤ 3000 MB)")


if __name__ == "__main__":
    main()
