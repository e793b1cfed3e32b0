"""Write the two configs of a GPU training round (teacher, then guidance distillation) as JSON.

    python scripts/gpu_round_configs.py OUTDIR --batch 256 --cache-batches 400 \\
        --teacher-s 330 --distill-s 100 [--init DIR] [--text-encoder DIR] [--workers 14] [--buckets JSON] \\
        [--frame-position] [--cross-position] [--text-refiner N] [--grounding W] [--teacher-lr LR]
        [--mirror-pairs]

The recipe is v9's (benchmarks/results/kinema-tiny/gpu_round/): bf16, object loss 1.0, the tiny
buckets with 128x128 weighted 3x and stills at twice the clip batch, a latent cache shared by both
runs, teacher lr 3e-4 / EMA 0.999, distillation of guidance 5 at lr 1e-4 / EMA 0.995. Each time
limit counts from the run's start, cache build included. `--frame-position` gives both runs the
transformer's frame-position layer (`DiTConfig.frame_position`; it starts at zero on weights
without it), `--cross-position` the same place added to every block's cross-attention queries
(`DiTConfig.cross_position`, likewise), `--text-refiner N` N self-attention layers over the text
tokens (`DiTConfig.text_refiner`, likewise), and `--grounding W` the grounding loss at weight W
(`grounding_loss_weight`; the cache then keeps the scene specs). `--teacher-lr` replaces the
teacher's 3e-4 (a gentle round from a model that already reads a word, e.g. 5e-5 from
`benchmarks/direction_escape.py`'s output), and `--mirror-pairs` makes half of every batch the
other half mirrored (`data.mirror_pairs`; the cache is keyed to it) in both runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _init_layout_channels(init: str) -> int:
    """The layout channels of the transformer in `init` (a pipeline folder), 0 without one."""
    config = Path(init) / "transformer" / "config.json"
    if not config.is_file():
        return 0
    return int(json.loads(config.read_text()).get("layout_channels", 0))


def round_configs(batch: int, cache_batches: int, teacher_s: float, distill_s: float, init: str,
                  text_encoder: str | None, workers: int, cache_dir: str, teacher_out: str,
                  buckets: list | None = None, seed: int = 3, frame_position: bool = False,
                  cross_position: bool = False, grounding: float = 0.0,
                  text_refiner: int = 0, relation_captions: bool = True, teacher_lr: float = 3e-4,
                  mirror_pairs: bool = False) -> tuple[dict, dict]:
    if buckets is None:
        buckets = [[128, 128, 25]] * 3 + [[224, 128, 25], [128, 224, 25], [176, 96, 25], [96, 176, 25],
                                          [128, 128, 1, 2 * batch]]
    data = {"num_workers": workers, "latent_cache": True, "latent_cache_batches": cache_batches,
            "latent_cache_dir": cache_dir, "buckets": buckets}
    if not relation_captions:
        data["relation_captions"] = False
    if mirror_pairs:
        data["mirror_pairs"] = True
    common = {"steps": 1_000_000, "precision": "bf16", "checkpoint_every": 100_000, "object_loss_weight": 1.0,
              "seed": seed, "data": data}
    if text_encoder:
        common["text_encoder"] = text_encoder
    model = {name: True for name, on in (("frame_position", frame_position), ("cross_position", cross_position)) if on}
    if text_refiner:
        model["text_refiner"] = text_refiner
    layout = _init_layout_channels(init)
    if layout:  # a layout transformer (v10 on) trains on as one
        model["layout_channels"] = layout
    if model:
        common["model"] = model
    if grounding > 0:
        common["grounding_loss_weight"] = grounding
    teacher = dict(common, time_limit_s=teacher_s, init=init, ema_decay=0.999, log_every=25,
                   optim={"lr": teacher_lr, "warmup_steps": 100, "batch_size": batch})
    distill = dict(common, time_limit_s=distill_s, init=f"{teacher_out}/final", guidance_distill=5.0,
                   ema_decay=0.995, log_every=10, optim={"lr": 1e-4, "warmup_steps": 20, "batch_size": batch})
    return teacher, distill


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--cache-batches", type=int, default=400)
    ap.add_argument("--teacher-s", type=float, required=True)
    ap.add_argument("--distill-s", type=float, required=True)
    ap.add_argument("--init", default="src/kinema/weights/kinema-tiny",
                    help="weights the teacher starts from; 'none': from scratch")
    ap.add_argument("--text-encoder", default=None)
    ap.add_argument("--workers", type=int, default=14)
    ap.add_argument("--cache-dir", default=None, help="default: /tmp/lcache_b<batch>")
    ap.add_argument("--teacher-out", default="/tmp/runs/teacher")
    ap.add_argument("--buckets", default=None, help="JSON list of [w, h, frames(, batch)] to replace the tiny ones")
    ap.add_argument("--frame-position", action="store_true", help="add the frame-position layer to the transformer")
    ap.add_argument("--cross-position", action="store_true",
                    help="add the frame position to every block's cross-attention queries")
    ap.add_argument("--grounding", type=float, default=0.0, help="grounding loss weight (default 0: off)")
    ap.add_argument("--text-refiner", type=int, default=0, help="self-attention layers over the text tokens")
    ap.add_argument("--no-relation-captions", action="store_true",
                    help="caption two objects each by itself, never by their relation (\"left of\")")
    ap.add_argument("--teacher-lr", type=float, default=3e-4, help="the teacher run's learning rate")
    ap.add_argument("--mirror-pairs", action="store_true",
                    help="half of every batch is the other half mirrored (data.mirror_pairs), both runs")
    args = ap.parse_args()
    teacher, distill = round_configs(
        args.batch, args.cache_batches, args.teacher_s, args.distill_s,
        "" if args.init == "none" else args.init, args.text_encoder,
        args.workers, args.cache_dir or f"/tmp/lcache_b{args.batch}", args.teacher_out,
        json.loads(args.buckets) if args.buckets else None, frame_position=args.frame_position,
        cross_position=args.cross_position, grounding=args.grounding, text_refiner=args.text_refiner,
        relation_captions=not args.no_relation_captions, teacher_lr=args.teacher_lr,
        mirror_pairs=args.mirror_pairs)
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "teacher.json").write_text(json.dumps(teacher, indent=1) + "\n")
    (out / "distill.json").write_text(json.dumps(distill, indent=1) + "\n")


if __name__ == "__main__":
    main()
