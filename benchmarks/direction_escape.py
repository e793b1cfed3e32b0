"""Teach a model the words "left" and "right" from a few mirror pairs at one noise level.

Every kinema-tiny since v4 ignores "left" and "right" (`motion_words.py`), and 25-minute
fine-tunes on thousands of scenes, mirror pairs and a pair loss included, leave that reading where
it was. This trains a pipeline's transformer on a small fixed set of K one-object scenes that move
the first word's way ("left"), each beside its mirror captioned with the other word ("right"), the
pair drawn with the same noise, every sample at noise level T (near pure noise, where only the
words can tell the pair apart). Every 100 steps it prints `motion_words.py --velocity`'s reading
on scenes it never trains on, so it shows whether what it learns from K scenes carries over to
others; `--out` saves the result as a pipeline for `motion_words.py`.

    python benchmarks/direction_escape.py --model runs/teacher-pipe --scenes 24 --steps 200 \\
        --t 0.95 --out runs/escape24
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import motion_words  # noqa: E402  (a sibling script)
from relation_stills import load_model, size_or_exit  # noqa: E402


def pair_scenes(k: int, seed: int, width: int, height: int, frames: int, word: str = "left") -> list:
    """K one-object train scenes moving `word`'s way whose mirror is also in the train split,
    drawn from a stream of their own (no scene of `motion_words.scenes` with the same seed)."""
    from kinema.world.mirror import has_heldout_object, mirror_spec
    from kinema.world.sample import sample_spec

    rng = np.random.default_rng([seed, 7919])
    out = []
    while len(out) < k:
        spec = sample_spec(rng, split="train", width=width, height=height, num_frames=frames, num_objects=1)
        if spec.objects[0].motion == word and not has_heldout_object(mirror_spec(spec)):
            out.append(spec)
    return out


def pair_batch(pipe, specs: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(latents [2K, ...], text states, mask): the scenes, then their mirrors captioned with
    "left" and "right" swapped."""
    from kinema.world.captions import canonical_caption
    from kinema.world.mirror import mirror_spec
    from kinema.video import Video
    from kinema.world.render import render

    clips = torch.stack([Video(render(s)).to_tensor() for s in specs])
    clips = torch.cat([clips, clips.flip(-1)])
    captions = [canonical_caption(s) for s in specs] + [canonical_caption(mirror_spec(s)) for s in specs]
    with torch.no_grad():
        latents = pipe.vae.encode(clips.to(pipe.device)).float()
        states, mask = pipe.text_encoder.encode(captions)
    return latents, states.to(pipe.device), mask.to(pipe.device)


def train(pipe, latents, states, mask, steps: int, t: float, lr: float, seed: int,
          report=None, report_every: int = 100) -> list[float]:
    """Plain flow-matching steps on the whole pair batch at noise level t (each pair one noise
    draw, fresh every step); returns the losses. `report(step)` is called every `report_every`."""
    from kinema.diffusion.flow import add_noise

    dit = pipe.transformer
    k = latents.shape[0] // 2
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(dit.parameters(), lr=lr, weight_decay=0.0)
    tt = torch.full((2 * k, latents.shape[2]), float(t), device=latents.device)
    losses = []
    dit.train()
    for step in range(1, steps + 1):
        noise = torch.randn((k,) + tuple(latents.shape[1:]), generator=gen).to(latents.device)
        noise = torch.cat([noise, noise])
        x_t = add_noise(latents, noise, tt)
        with torch.autocast(latents.device.type, dtype=torch.bfloat16, enabled=latents.device.type == "cpu"):
            pred = dit(x_t, tt, states, mask)
        loss = (pred.float() - (noise - latents)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dit.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if report is not None and step % report_every == 0:
            dit.eval()
            report(step)
            dit.train()
    dit.eval()
    return losses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="pipeline folder to start from ('shipped': the shipped model)")
    ap.add_argument("--scenes", type=int, default=24, help="K scenes, each with its mirror (default 24)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--t", type=float, default=0.95, help="the one noise level trained on (default 0.95)")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--size", default="64x64")
    ap.add_argument("--frames", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--probe", type=int, default=16, help="held-out scenes the word's effect is read on")
    ap.add_argument("--out", default="", help="save the trained pipeline here")
    args = ap.parse_args()
    if args.scenes < 1 or args.steps < 1 or args.probe < 1:
        sys.exit("direction_escape: --scenes, --steps and --probe must be at least 1")
    if not 0 < args.t <= 1:
        sys.exit("direction_escape: --t must be in (0, 1]")
    if args.frames < 1:
        sys.exit("direction_escape: --frames must be at least 1")
    width, height = size_or_exit("direction_escape", args.size)
    pipe = load_model("direction_escape", "model", args.model)
    specs = pair_scenes(args.scenes, args.seed, width, height, args.frames)
    probe = motion_words.scenes(args.probe, args.seed + 1000, width, height)  # not motion_words' own
    latents, states, mask = pair_batch(pipe, specs)
    start = time.perf_counter()

    def report(step: int) -> None:
        line = motion_words.probe_velocity(pipe, probe, [args.t])[0].strip()
        print(f"step {step} ({time.perf_counter() - start:.0f} s): {line}", flush=True)

    print(f"{args.model}: {args.scenes} mirror pairs at {width}x{height}, t = {args.t:g}; "
          f"the word's effect on {args.probe} other scenes", flush=True)
    pipe.transformer.eval()
    print("before: " + motion_words.probe_velocity(pipe, probe, [args.t])[0].strip(), flush=True)
    losses = train(pipe, latents, states, mask, args.steps, args.t, args.lr, args.seed, report)
    print(f"loss {np.mean(losses[:10]):.4f} over the first 10 steps, {np.mean(losses[-10:]):.4f} over the last 10")
    if args.out:
        pipe.save_pretrained(args.out)
        print(f"saved {args.out}")


if __name__ == "__main__":
    main()
