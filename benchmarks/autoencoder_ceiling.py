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


class AutoencoderRoundTrip:
    """A stand-in for a pipeline: 'generates' a prompt's intended scene through the VAE."""

    def __init__(self, vae, items):
        self.vae = vae
        self.specs = {item.prompt: item.spec for item in items}

    def generate(self, prompt: str, *, num_frames: int, size: str, fps: float, seed: int = 0, **_):
        from kinema.video import Video
        from kinema.world import render
        from kinema.world.spec import SceneSpec

        spec = SceneSpec.from_dict(self.specs[prompt].to_dict())
        frames = 1 + 4 * ((num_frames - 1 + 3) // 4)  # the autoencoder takes 1+4k frames
        spec.num_frames = frames
        x = Video(render(spec), fps=fps).to_tensor()[None]
        with torch.no_grad():
            y = self.vae.decode(self.vae.encode(x)).clamp(-1, 1)[0, :, :num_frames]
        return Video.from_tensor(y, fps=fps)


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
