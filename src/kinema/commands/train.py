"""`kinema train vae|dit|planner`: train the autoencoder, the diffusion transformer or the scene planner.

    kinema train vae --preset tiny --out runs/vae
    kinema train dit --preset tiny --vae runs/vae/final --out runs/dit
    kinema train planner --out runs/planner
    torchrun --nproc_per_node 4 -m kinema.cli train dit --preset tiny --vae runs/vae/final --out runs/dit
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..errors import KinemaError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train the VAE or the DiT (one process or under torchrun)",
        description="Train the video autoencoder (vae) or the diffusion transformer (dit). Runs in one "
                    "process or under `torchrun --nproc_per_node N` (DDP; FSDP with config parallel: \"fsdp\").",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Outputs in --out: checkpoints/step_*/ (resumable), metrics.jsonl, config.json and final/ "
               "(vae: config.json + diffusion_pytorch_model.safetensors; dit: a whole pipeline folder).",
    )
    p.add_argument("stage", choices=("vae", "dit", "planner"),
                   help="what to train (planner: the scene planner of a layout transformer, on the world's captions)")
    p.add_argument("--preset", choices=("smoke", "tiny"), default=None,
                   help="starting recipe: smoke (seconds on a CPU) or tiny (the shipped model); default tiny")
    p.add_argument("--config", metavar="FILE.json", help="JSON object of config fields overriding the preset")
    p.add_argument("--out", metavar="DIR", help="run folder (checkpoints, metrics, final export)")
    p.add_argument("--steps", type=int, metavar="N", help="optimiser steps in total")
    p.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help="stop (checkpoint + export) after this much training time; the learning rate's cosine "
                        "follows it, and --resume may change it")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--data", metavar="world|DIR",
                   help="training data: the procedural world (default) or a folder with captions.jsonl")
    p.add_argument("--vae", metavar="DIR", help="dit: the trained VAE (OUT/final of `kinema train vae`)")
    p.add_argument("--batch-size", type=int, metavar="N", help="per-process batch size")
    p.add_argument("--checkpoint-every", type=int, metavar="N", help="steps between checkpoints")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--people-captions", type=float, metavar="SHARE",
                   help="planner: the share of its training captions in sentence structures the world's "
                        "captions do not use (motion said after the objects, the second placed from the "
                        "first, the background in its own sentence); default 0")
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    p.set_defaults(func=handler)


def _train_planner(args) -> int:
    from ..train.planner import train_planner

    for flag, value in (("--preset", args.preset), ("--config", args.config), ("--data", args.data),
                        ("--vae", args.vae), ("--checkpoint-every", args.checkpoint_every),
                        ("--time-limit", args.time_limit)):
        if value is not None:
            raise KinemaError(f"{flag} is not for `kinema train planner` (it trains on the world's captions "
                              "in minutes; it takes --out, --steps, --batch-size, --seed and --people-captions)")
    if args.resume or args.print_config:
        raise KinemaError("`kinema train planner` has no checkpoints to resume and no config to print")
    if not args.out:
        raise KinemaError("kinema train planner needs --out DIR")
    if args.steps is not None and args.steps < 1:
        raise KinemaError(f"--steps must be at least 1, got {args.steps}")
    if args.batch_size is not None and args.batch_size < 1:
        raise KinemaError(f"--batch-size must be at least 1, got {args.batch_size}")
    log = (lambda _msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    train_planner(args.out, steps=args.steps or 3000, batch_size=args.batch_size or 256, seed=args.seed or 0,
                  people_captions=args.people_captions or 0.0, log=log)
    return 0


def handler(args) -> int:
    from ..train.config import resolve

    if args.stage == "planner":
        return _train_planner(args)
    if args.people_captions is not None:
        raise KinemaError("--people-captions is for `kinema train planner` only (the transformer's captions "
                          "are the world's)")
    overrides: dict = {}
    if args.steps is not None:
        if args.steps < 1:
            raise KinemaError(f"--steps must be at least 1, got {args.steps}")
        overrides["steps"] = args.steps
    if args.time_limit is not None:
        if not args.time_limit > 0:
            raise KinemaError(f"--time-limit must be a positive number of seconds, got {args.time_limit:g}")
        overrides["time_limit_s"] = args.time_limit
    if args.out:
        overrides["out"] = args.out
    if args.data:
        overrides.setdefault("data", {})["source"] = args.data
    if args.vae:
        if args.stage != "dit":
            raise KinemaError("--vae is for `kinema train dit`")
        overrides["vae"] = args.vae
    if args.batch_size is not None:
        overrides.setdefault("optim", {})["batch_size"] = args.batch_size
    if args.checkpoint_every is not None:
        overrides["checkpoint_every"] = args.checkpoint_every
    if args.seed is not None:
        overrides["seed"] = args.seed
    cfg = resolve(args.stage, args.preset, args.config, overrides)
    if args.print_config:
        print(cfg.to_json())
        return 0
    from ..train.trainer import train

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    try:
        result = train(cfg, resume=args.resume, quiet=args.quiet)
    except KinemaError as exc:
        if distributed:
            print(f"kinema: error: {exc}", file=sys.stderr)
            _leave(2)
        raise
    if not args.quiet and int(os.environ.get("RANK", "0")) == 0:
        summary = {k: result[k] for k in ("step", "loss", "psnr", "psnr_eval", "psnr_heldout", "out", "stopped_by") if k in result}
        print(json.dumps(summary))
    if distributed:
        _leave(0)
    return 0


def _leave(code: int) -> None:
    """Exit a torchrun worker without interpreter finalisation. With torch 2.13 on gloo a
    process sometimes aborts at exit ("terminate called without an active exception", SIGABRT)
    after destroy_process_group, turning a finished run into a failed one for torchrun. By now
    every file is written and closed and the process group is destroyed, so nothing is lost."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
