"""Speed and memory of `kinema generate` with the shipped model (DESIGN §5).

Runs the real command, `kinema generate PROMPT -o OUT.mp4`, in a fresh process per repetition and
prints its stage breakdown (startup = imports, load, text, plan, encode, denoise, decode, write; from
`--timings-json`), the whole-process wall time as a user waits for it, the real-time factor
(clip length / wall time) and peak resident memory.

    python benchmarks/generate.py [--model PATH] [--runs 3] [--size 128x128] [--seconds 2] [--fps 12]
                                  [--steps N] [--sampler euler|heun|multistep] [--guidance-interval LO,HI]
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

from kinema.sampler_names import SAMPLERS, parse_guidance_interval


# the `kinema` script a user runs, from this interpreter's environment
_SCRIPT = Path(sys.executable).parent / "kinema"
KINEMA = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-c", "from kinema.cli import entry; entry()"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size", default="128x128")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--fps", type=float, default=12.0)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--sampler", default=None, choices=SAMPLERS)
    ap.add_argument("--guidance-interval", type=parse_guidance_interval, default=None, metavar="LO,HI",
                    help="guide only the steps whose time lies in [LO, HI] (default: the model's)")
    ap.add_argument("--prompt", default="a large red circle moves right on a navy background")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            out, timings = Path(tmp) / f"bench_{i}.mp4", Path(tmp) / f"bench_{i}.json"
            cmd = [*KINEMA, "generate", args.prompt, "-o", str(out), "--quiet",
                   "--timings-json", str(timings), "--size", args.size, "--seconds", str(args.seconds),
                   "--fps", str(args.fps), "--seed", "0"]
            if args.model:
                cmd += ["--model", args.model]
            if args.steps:
                cmd += ["--steps", str(args.steps)]
            if args.sampler:
                cmd += ["--sampler", args.sampler]
            if args.guidance_interval:
                cmd += ["--guidance-interval", ",".join(f"{t:g}" for t in args.guidance_interval)]
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t
            if proc.returncode != 0:
                sys.exit(f"run {i} failed:\n{proc.stderr[-2000:]}")
            res = json.loads(timings.read_text())
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
