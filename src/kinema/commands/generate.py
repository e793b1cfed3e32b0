"""`kinema generate PROMPT -o OUT.mp4`: text (and images and clips) to a video file.

Prints the stage timings (text, denoise, decode, write) on stderr and the output path on stdout,
so `out=$(kinema generate ...)` captures the path alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..cli import PROCESS_START, request_fast_exit
from ..errors import KinemaError
from ..sampler_names import SAMPLERS, parse_guidance_interval

_SUFFIXES = (".mp4", ".gif", ".png")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate a video from a prompt (and an image or clips)",
                       description="Generate a video from a text prompt. Modes: --image (animate a "
                       "still), --video with --mode extend|extend_backward|edit, --video with "
                       "--end-video (connect), --loop, --num-frames 1 (still image).")
    p.add_argument("prompt", help="what the video shows")
    p.add_argument("-o", "--output", required=True, help="output file: .mp4, .gif, or .png (one frame)")
    p.add_argument("--seconds", type=float, default=None, help="duration in seconds (default: the model's)")
    p.add_argument("--num-frames", type=int, default=None, help="number of frames (instead of --seconds)")
    p.add_argument("--size", default=None, help="WIDTHxHEIGHT, e.g. 128x128 (default: the model's)")
    p.add_argument("--fps", type=float, default=None, help="frames per second (default: the model's or the clip's)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same video)")
    p.add_argument("--negative", default=None, help="negative prompt")
    p.add_argument("--image", default=None, help="image to animate (image->video)")
    p.add_argument("--video", default=None, help="clip to extend, edit, or connect from")
    p.add_argument("--end-video", default=None, help="clip to connect to (with --video)")
    p.add_argument("--mode", default=None,
                   help="t2v, i2v, extend, extend_backward, connect, loop or edit (default: from the inputs)")
    p.add_argument("--strength", type=float, default=None, help="edit strength in (0, 1] (default 0.6)")
    p.add_argument("--loop", action="store_true", help="make a seamless loop")
    p.add_argument("--model", default=None, help="saved model folder (default: the shipped kinema-tiny)")
    p.add_argument("--sampler", default=None, choices=SAMPLERS, help="sampler (default: the model's; multistep: second order at one call per step; stochastic: fresh noise at every step)")
    p.add_argument("--shift", type=float, default=None,
                   help="sampling time shift; above 1 spends more steps at high noise, where the layout "
                   "is decided (default: the model's)")
    p.add_argument("--guidance-interval", type=parse_guidance_interval, default=None, metavar="LO,HI",
                   help="guide only the steps whose time t (1 = noise) lies in [LO, HI]; the others take one "
                   "network call instead of two (default: the model's; 0,1 guides every step)")
    p.add_argument("--no-layout", action="store_true",
                   help="do not plan the scene first (a model with a scene planner then goes by the words alone)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or timings")
    p.add_argument("--contact-sheet", default=None, metavar="PNG", help="also write a contact sheet of the result")
    p.add_argument("--timings-json", default=None, metavar="JSON",
                   help="also write the stage timings in seconds (startup, load, text, plan, encode, denoise, "
                   "decode, write) and the peak resident memory to this file")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    out = Path(args.output)
    suffix = out.suffix.lower()
    if suffix not in _SUFFIXES:
        raise KinemaError(f"output {args.output!r}: use a .mp4, .gif or .png file name")
    num_frames = args.num_frames
    if suffix == ".png":
        if num_frames is None and args.seconds is None:
            num_frames = 1
        elif num_frames != 1:
            raise KinemaError(f"output {args.output!r}: a .png holds one frame; use --num-frames 1 or a .mp4/.gif file")
    if not args.prompt.strip():
        raise KinemaError("the prompt is empty")
    for what, value in (("image", args.image), ("video", args.video), ("end video", args.end_video)):
        if value is not None and not Path(value).exists():
            raise KinemaError(f"{what} file {value!r} does not exist")
    if args.model is not None and not Path(args.model).exists():
        raise KinemaError(f"model folder {args.model!r} does not exist")

    from ..pipeline import Pipeline, parse_size

    t_startup = time.perf_counter() - PROCESS_START  # the interpreter's own start is not counted
    if args.size is not None:
        parse_size(args.size)  # fail on a bad size before loading the model
    t0 = time.perf_counter()
    try:
        pipe = Pipeline.from_pretrained(args.model, device=args.device)
    except RuntimeError as exc:  # e.g. an unknown or unavailable --device
        raise KinemaError(f"cannot load the model on device {args.device!r}: {exc}") from None
    t_load = time.perf_counter() - t0
    video = pipe.generate(
        args.prompt, seconds=args.seconds, num_frames=num_frames, size=args.size, fps=args.fps,
        steps=args.steps, guidance=args.guidance, negative_prompt=args.negative, seed=args.seed,
        image=args.image, video=args.video, end_video=args.end_video, mode=args.mode,
        strength=args.strength, loop=args.loop, sampler=args.sampler, shift=args.shift,
        progress=not args.quiet, layout=False if args.no_layout else None,
        guidance_interval=args.guidance_interval,
    )
    if suffix == ".png" and video.num_frames != 1:
        raise KinemaError(f"output {args.output!r}: a .png holds one frame, this result has {video.num_frames}; use .mp4 or .gif")
    t0 = time.perf_counter()
    video.save(out)
    t_write = time.perf_counter() - t0
    if args.contact_sheet:
        video.contact_sheet(args.contact_sheet, title=video.metadata.get("prompt"))
    if args.timings_json:
        _write_timings(args.timings_json, pipe, video, startup=t_startup, load=t_load, write=t_write,
                       total=time.perf_counter() - PROCESS_START)
    if video.metadata.get("negative_prompt_unused"):
        learned = pipe.config.get("distilled_guidance")
        why = (f"this model learned guidance {learned:g} into its weights and samples at 1" if learned
               else "guidance is 1")
        print(f"kinema: note: --negative had no effect ({why}); add --guidance 2 or more to use it", file=sys.stderr)
    if not args.quiet:
        if video.metadata.get("plan"):
            from ..layout.planner import describe_plan

            print(f"kinema: planned {describe_plan(video.metadata['plan'])}", file=sys.stderr)
        t = pipe.last_timings
        encode = f"encode {t['encode']:.2f}s " if t.get("encode") else ""
        plan = f"plan {t['plan']:.2f}s " if t.get("plan") else ""
        print(
            f"kinema: {video.num_frames} frames {video.width}x{video.height} @ {video.fps:g} fps; "
            f"load {t_load:.2f}s text {t.get('text', 0):.2f}s {plan}{encode}denoise {t.get('denoise', 0):.2f}s "
            f"decode {t.get('decode', 0):.2f}s write {t_write:.2f}s total {time.perf_counter() - t_start:.2f}s",
            file=sys.stderr,
        )
    print(out)
    request_fast_exit()
    return 0


def _write_timings(path: str, pipe, video, *, startup: float, load: float, write: float, total: float) -> None:
    import resource

    import torch

    from ..files import atomic_write

    timings = {"startup": startup, "load": load, **{k: v for k, v in pipe.last_timings.items() if k != "total"},
               "write": write, "total_in_process": total}
    report = {"stages": timings, "frames": video.num_frames, "fps": video.fps,
              "width": video.width, "height": video.height, "threads": torch.get_num_threads(),
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(json.dumps(report, indent=1) + "\n"))
