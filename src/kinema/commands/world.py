"""`kinema world render|sample|sheet`: the procedural world from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import KinemaError
from ..video import Video, grid_image


def register(sub: argparse._SubParsersAction) -> None:
    world = sub.add_parser("world", help="render and sample procedural world clips")
    wsub = world.add_subparsers(dest="world_command", metavar="ACTION")
    wsub.required = True

    render = wsub.add_parser("render", help="render a scene spec (JSON) to a video file")
    render.add_argument("spec", help="scene spec JSON file (DESIGN §3 schema)")
    render.add_argument("-o", "--output", required=True, help="output .mp4/.gif/.png or folder")
    render.set_defaults(func=_render)

    sample = wsub.add_parser("sample", help="write N random clips, each with its spec JSON and caption")
    sample.add_argument("--n", type=int, default=8)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--split", choices=("train", "heldout"), default="train")
    sample.add_argument("--size", default="128x128", help="WxH, default 128x128")
    sample.add_argument("--fps", type=float, default=12.0)
    sample.add_argument("--num-frames", type=int, default=25)
    sample.add_argument("-o", "--output", required=True, help="output folder")
    sample.set_defaults(func=_sample)

    sheet = wsub.add_parser("sheet", help="contact sheet PNG of the clips in a folder")
    sheet.add_argument("folder")
    sheet.add_argument("-o", "--output", required=True)
    sheet.set_defaults(func=_sheet)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise KinemaError(f"size: expected WxH such as 128x128, got {text!r}") from None
    return w, h


def _read_spec(path: str):
    from ..world.spec import SceneSpec

    p = Path(path)
    if not p.is_file():
        raise KinemaError(f"{path}: no such spec file")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise KinemaError(f"{path}: cannot read spec ({exc})") from None
    return SceneSpec.from_json(text)


def _render(args) -> int:
    from ..world.captions import canonical_caption
    from ..world.render import render_video

    spec = _read_spec(args.spec)
    out = render_video(spec, caption=canonical_caption(spec)).save(args.output)
    print(out)
    return 0


def _sample(args) -> int:
    from ..world.captions import caption
    from ..world.render import render_video
    from ..world.sample import sample_specs
    import numpy as np

    if args.n < 1:
        raise KinemaError(f"--n: must be at least 1, got {args.n}")
    w, h = parse_size(args.size)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    specs = sample_specs(args.n, seed=args.seed, split=args.split, width=w, height=h, fps=args.fps,
                         num_frames=args.num_frames)
    for i, spec in enumerate(specs):
        text = caption(spec, np.random.default_rng([args.seed, i, 1]))
        stem = f"{args.split}_{args.seed}_{i:05d}"
        render_video(spec, caption=text).save(out / f"{stem}.mp4")
        (out / f"{stem}.json").write_text(spec.to_json(indent=1) + "\n")
        (out / f"{stem}.txt").write_text(text + "\n")
        print(f"{stem}.mp4  {text}")
    return 0


def _sheet(args) -> int:
    folder = Path(args.folder)
    clips = sorted(folder.glob("*.mp4"))
    if not clips:
        raise KinemaError(f"{folder}: no .mp4 clips")
    rows, labels = [], []
    for clip in clips[:16]:
        v = Video.read(clip)
        idx = [0, v.num_frames // 2, v.num_frames - 1]
        rows.extend(v.frames[i] for i in idx)
        labels.extend(f"{clip.stem[-5:]} {i / v.fps:.2f}s" for i in idx)
    grid_image(rows, labels, columns=6, title="Kinema world samples (start, middle, end)").save(args.output)
    print(args.output)
    return 0
