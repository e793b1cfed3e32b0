"""Where small stars are lost: the autoencoder's decoder, read frame by frame and video by video.

Three readings, each for the model's own autoencoder and for every `--vae NAME=PATH` beside it
(a decoder fine-tune of the same encoder):

1. **Frames**: one small object of each shape, still or moving, rendered as 9-frame clips,
   encoded and decoded; the analyzer names the shape of the largest object in frames 0, 3, 6 and 8.
2. **Ceiling on star prompts**: the benchmark's single, binding and relation prompts that ask for a
   small star (the first `--items`), their intended scenes rendered exactly and round-tripped: how
   often the video shows a star of the star's colour, and the category verdicts. No transformer
   can do better than this with that autoencoder.
3. **The transformer's latents** for the same prompts (generated once with the model, seed = the
   item's position), decoded by each autoencoder and judged the same way.

    python benchmarks/small_star_decoding.py [--model PATH] [--vae NAME=PATH ...] [--items 48]
        [--clips 160] [--no-generate]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from autoencoder_ceiling import render_for_autoencoder, round_trip  # noqa: E402

MOTIONS = ("still", "left", "right", "up", "down")
FRAMES_READ = (0, 3, 6, 8)


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 [B, T, H, W, 3] -> float [B, 3, T, H, W] in [-1, 1]."""
    return torch.from_numpy(frames).permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)


def _to_frames(y: torch.Tensor) -> np.ndarray:
    """float [B, 3, T, H, W] -> uint8 [B, T, H, W, 3]."""
    return ((y.clamp(-1, 1).permute(0, 2, 3, 4, 1) + 1.0) * 127.5).round().byte().numpy()


def small_object_clips(n: int, seed: int = 11):
    """`n` one-object scenes of 9 frames: small, shapes in turn, random motion, colour, background."""
    from kinema.world.spec import BACKGROUNDS, COLORS, SHAPES, ObjectSpec, SceneSpec

    rng = np.random.default_rng(seed)
    specs = []
    for i in range(n):
        motion = MOTIONS[int(rng.integers(len(MOTIONS)))]
        obj = ObjectSpec(shape=SHAPES[i % len(SHAPES)], color=str(rng.choice(list(COLORS))), size="small",
                         motion=motion, start=(0.5, 0.5), distance=0.3 if motion != "still" else 0.45)
        specs.append(SceneSpec(width=128, height=128, fps=12, num_frames=9,
                               background=str(rng.choice(list(BACKGROUNDS))), objects=[obj]))
    return specs


def frame_readings(vae, specs, batch: int = 16) -> dict[str, tuple[int, int]]:
    """"shape, still" / "shape, moving" -> (frames read as the shape, frames read)."""
    from kinema.world import render
    from kinema.world.analyze import detect

    hits: dict[str, list[int]] = {}
    for i in range(0, len(specs), batch):
        chunk = specs[i:i + batch]
        with torch.no_grad():
            decoded = _to_frames(vae.decode(vae.encode(_to_tensor(np.stack([render(s) for s in chunk])))))
        for spec, frames in zip(chunk, decoded):
            want = spec.objects[0]
            key = f"{want.shape}, {'still' if want.motion == 'still' else 'moving'}"
            h = hits.setdefault(key, [0, 0])
            for f in FRAMES_READ:
                found = detect(frames[f], spec.background)
                h[0] += bool(found) and max(found, key=lambda d: d.area).shape == want.shape
                h[1] += 1
    return {k: (a, b) for k, (a, b) in sorted(hits.items())}


def is_small_star(obj) -> bool:
    """Whether an ObjectSpec is a small star."""
    return obj.shape == "star" and obj.size == "small"


def star_items(n: int):
    """The first `n` benchmark items (single, binding, relation; both splits) asking for a small star."""
    from kinema.eval.prompts import benchmark_items

    items = [it for it in benchmark_items(50, categories=["single", "binding", "relation"])
             if any(is_small_star(o) for o in it.spec.objects)]
    return items[:n]


def judge_frames(item, frames: np.ndarray) -> dict:
    """Small stars shown as stars (of their colour) and the category's verdicts for one video."""
    from kinema.eval.judge import judge
    from kinema.world.analyze import analyze_frames

    facts = analyze_frames(frames)
    verdict = judge(item.category, item.spec, facts, frames)
    stars = [o for o in item.spec.objects if is_small_star(o)]
    shown = sum(any(d["shape"] == "star" and d["color"] == o.color for d in facts["objects"]) for o in stars)
    return {"stars": (shown, len(stars)), **{k: verdict[k] for k in ("shape", "binding", "relation", "everything")
                                            if verdict.get(k) is not None}}


def _summary(rows: list[dict]) -> str:
    shown = sum(r["stars"][0] for r in rows)
    asked = sum(r["stars"][1] for r in rows)
    parts = [f"small stars shown as stars {shown}/{asked}"]
    for key in ("shape", "binding", "relation", "everything"):
        v = [r[key] for r in rows if key in r]
        if v:
            parts.append(f"{key} {sum(v)}/{len(v)}")
    return ", ".join(parts)


def ceiling_rows(vae, items) -> list[dict]:
    rows = []
    for item in items:
        frames = round_trip(vae, render_for_autoencoder(item.spec, item.spec.num_frames), item.spec.fps)
        rows.append(judge_frames(item, frames[:item.spec.num_frames]))
    return rows


def generated_latents(pipe, items) -> list[torch.Tensor]:
    out = []
    for k, item in enumerate(items):
        _, windows = pipe.generate(item.prompt, size=f"{item.spec.width}x{item.spec.height}", seed=k,
                                   num_frames=item.spec.num_frames, progress=False, return_latents=True)
        out.append(windows[0]["latents"].float())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="pipeline folder (default: the shipped kinema-tiny)")
    ap.add_argument("--vae", action="append", default=[], metavar="NAME=PATH",
                    help="another autoencoder with the same encoder (a decoder fine-tune), read beside the model's")
    ap.add_argument("--items", type=int, default=48, help="benchmark prompts with a small star")
    ap.add_argument("--clips", type=int, default=160, help="one-object clips for the frame readings")
    ap.add_argument("--no-generate", action="store_true", help="leave out reading 3 (the transformer's latents)")
    args = ap.parse_args()

    from kinema.pipeline import Pipeline
    from kinema.train.components import load_vae

    t0 = time.perf_counter()
    pipe = Pipeline.from_pretrained(args.model)
    named = [("model's", pipe.vae.eval().float())]
    for entry in args.vae:
        name, path = entry.split("=", 1) if "=" in entry else (entry, entry)
        named.append((name, load_vae(path).eval().float()))

    specs = small_object_clips(args.clips)
    print(f"1. frames {FRAMES_READ} of {args.clips} one-object 9-frame clips, small objects, read as their shape")
    for name, vae in named:
        readings = frame_readings(vae, specs)
        total = (sum(a for a, _ in readings.values()), sum(b for _, b in readings.values()))
        print(f"  {name:>12}: " + ", ".join(f"{k} {100 * a / b:.0f}%" for k, (a, b) in readings.items())
              + f"; all {100 * total[0] / total[1]:.1f}% of {total[1]}")

    items = star_items(args.items)
    print(f"\n2. ceiling: {len(items)} benchmark prompts with a small star, their scenes round-tripped")
    for name, vae in named:
        print(f"  {name:>12}: {_summary(ceiling_rows(vae, items))}")

    if not args.no_generate:
        latents = generated_latents(pipe, items)
        print(f"\n3. the transformer's latents for the same {len(items)} prompts, decoded")
        for name, vae in named:
            rows = []
            for item, z in zip(items, latents):
                with torch.no_grad():
                    frames = _to_frames(vae.decode(z))[0]
                rows.append(judge_frames(item, frames[:item.spec.num_frames]))
            print(f"  {name:>12}: {_summary(rows)}")
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
