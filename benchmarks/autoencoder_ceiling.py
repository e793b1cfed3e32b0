"""The best `kinema eval` score a transformer could reach with a model's autoencoder.

Each benchmark prompt's intended scene is rendered exactly, encoded and decoded by the model's
VAE, and judged like a generated video. Whatever fails here fails because the autoencoder loses
it (a blurred small star, a moving object that ghosts between latent frames), so no amount of
transformer training can fix it: train the autoencoder first.

    python benchmarks/autoencoder_ceiling.py [--model PATH] [--n 50] [--seeds 1] [-o OUT_DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch


def render_for_autoencoder(spec, num_frames: int):
    """`spec` rendered as uint8 [T, H, W, 3] with T = `num_frames` rounded up to the 1+4k frames the
    autoencoder takes."""
    from kinema.world import render
    from kinema.world.spec import SceneSpec

    spec = SceneSpec.from_dict(spec.to_dict())
    spec.num_frames = 1 + 4 * ((num_frames - 1 + 3) // 4)
    return render(spec)


def round_trip(vae, frames, fps: float):
    """uint8 frames [T, H, W, 3] (T = 1+4k) through encode/decode, back as uint8."""
    import numpy as np

    from kinema.video import Video

    x = Video(frames, fps=fps).to_tensor()[None]
    with torch.no_grad():
        y = vae.decode(vae.encode(x)).clamp(-1, 1)[0]
    return np.asarray(Video.from_tensor(y, fps=fps).frames)


class AutoencoderRoundTrip:
    """A stand-in for a pipeline: 'generates' a prompt's intended scene through the VAE."""

    def __init__(self, vae, items):
        self.vae = vae
        self.specs = {item.prompt: item.spec for item in items}

    def generate(self, prompt: str, *, num_frames: int, size: str, fps: float, seed: int = 0, **_):
        from kinema.video import Video

        truth = render_for_autoencoder(self.specs[prompt], num_frames)
        return Video(round_trip(self.vae, truth, fps)[:num_frames], fps=fps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None,
                    help="pipeline folder or VAE folder (OUT/final of `kinema train vae`; default: the shipped kinema-tiny)")
    ap.add_argument("--n", type=int, default=50, help="prompts per category and split")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per prompt (the render does not depend on it)")
    ap.add_argument("-o", "--out", default=None, help="report folder (default: a temporary one)")
    args = ap.parse_args()

    from kinema.eval.prompts import benchmark_items
    from kinema.eval.run import markdown, run_eval
    from kinema.pipeline import Pipeline
    from kinema.train.components import load_vae

    vae = load_vae(args.model) if args.model else Pipeline.from_pretrained().vae
    vae.eval()
    t0 = time.perf_counter()
    out = args.out or tempfile.mkdtemp(prefix="kinema-ceiling-")
    report = run_eval(AutoencoderRoundTrip(vae, benchmark_items(args.n)), out, n=args.n,
                      seeds=tuple(range(args.seeds)), model_name=f"autoencoder round trip of {args.model or 'kinema-tiny'}",
                      progress=True)
    print(markdown(report))
    print(f"{time.perf_counter() - t0:.0f} s; report in {out}")


if __name__ == "__main__":
    main()
