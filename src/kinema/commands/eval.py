"""`kinema eval [--model PATH] [--n N] [--categories A,B] -o REPORT_DIR`: the prompt-adherence benchmark."""

from __future__ import annotations

import argparse

from ..errors import KinemaError
from ..eval.prompts import CATEGORIES, check_categories
from ..sampler_names import SAMPLERS, parse_guidance_interval


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="benchmark a model's prompt adherence with the world analyzer")
    p.add_argument("--model", default=None, help="pipeline folder (default: the shipped model)")
    p.add_argument("--n", type=int, default=200, help="prompts per category and split (default 200)")
    p.add_argument("--seeds", type=int, default=2, help="seeds per prompt (default 2)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--guidance", type=float, default=None)
    p.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help="sampler (default: the model's)")
    p.add_argument("--shift", type=float, default=None,
                   help="sampling time shift, > 1 spends more steps at high noise (default: the model's)")
    p.add_argument("--guidance-interval", type=parse_guidance_interval, default=None, metavar="LO,HI",
                   help="guide only the steps whose time t (1 = noise) lies in [LO, HI]; the others take one "
                   "network call instead of two (default: the model's; 0,1 guides every step)")
    p.add_argument("--categories", type=_categories, default=None, metavar="NAME[,NAME…]",
                   help=f"run only these categories ({', '.join(CATEGORIES)}), on the same prompts and seeds "
                   "as a whole run, e.g. to check one row before a whole benchmark (default: all)")
    p.add_argument("--no-layout", action="store_true",
                   help="a model with a scene planner: do not plan the scenes (the words alone steer)")
    p.add_argument("--keep-latents", action="store_true",
                   help="also write the drawn latents to OUTPUT/latents.safetensors (~57 kB a default clip), "
                   "for --latents-from")
    p.add_argument("--latents-from", default=None, metavar="RUN",
                   help="decode the latents an earlier run kept (--keep-latents) instead of sampling: judges a "
                   "new decoder on the same transformer (refused for another transformer or latent space)")
    p.add_argument("--resume", action="store_true",
                   help="continue the unfinished run in OUTPUT (stopped by a kill, a crash or a session's end): "
                   "the videos it judged are kept and only the rest are made; refused if it was started with "
                   "other weights, prompts or settings")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=None, help="analyzer processes")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("-o", "--output", required=True, help="report folder")
    p.set_defaults(func=_eval)


def _categories(text: str) -> list[str]:
    """'count, binding' -> ['count', 'binding']; `_eval` checks the names."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _eval(args) -> int:
    from ..eval.run import run_eval
    from ..pipeline import Pipeline

    if args.n < 1 or args.seeds < 1:
        raise KinemaError("--n and --seeds must be at least 1")
    if args.categories is not None:
        try:
            args.categories = check_categories(args.categories)
        except ValueError as e:
            raise KinemaError(f"--categories: {e}") from None
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    pipe = Pipeline.from_pretrained(args.model, device=device)
    if args.no_layout:
        pipe.config["layout"] = False
    report = run_eval(pipe, args.output, n=args.n, seeds=tuple(range(args.seeds)), steps=args.steps,
                      guidance=args.guidance, sampler=args.sampler, shift=args.shift,
                      guidance_interval=args.guidance_interval, batch_size=args.batch_size,
                      workers=args.workers, model_name=args.model or "kinema-tiny",
                      categories=args.categories, keep_latents=args.keep_latents,
                      latents_from=args.latents_from, resume=args.resume)
    from ..eval.run import markdown

    print(markdown(report))
    return 0
