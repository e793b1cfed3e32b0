"""A picture of what autoencoders lose: benchmark scenes rendered exactly (top row of each block)
and after each autoencoder's round trip (one row per autoencoder), at the first, middle and last
frame. Frame 0 is a latent frame of its own; the others are packed four to a latent frame, which
is where moving objects blur and ghost.

    python benchmarks/roundtrip_sheet.py --vae v4=runs/cpu3/vae/final --vae v5=src/kinema/weights/kinema-tiny \\
        [--n 6] [--category single] [--small-star] [-o sheet.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from autoencoder_ceiling import render_for_autoencoder, round_trip  # noqa: E402
from small_star_decoding import is_small_star  # noqa: E402


def sheet(rows: list[tuple[str, list[np.ndarray]]], path: str, scale: int = 1) -> None:
    """Rows of equal-size frames with a label column on the left, written as a PNG."""
    from PIL import Image, ImageDraw

    h, w = rows[0][1][0].shape[:2]
    label_w, gap = 180, 4
    cols = max(len(frames) for _, frames in rows)
    out = Image.new("RGB", (label_w + cols * (w * scale + gap), len(rows) * (h * scale + gap)), "white")
    draw = ImageDraw.Draw(out)
    for r, (label, frames) in enumerate(rows):
        y = r * (h * scale + gap)
        draw.text((4, y + h * scale // 2 - 12), label, fill="black")
        for c, frame in enumerate(frames):
            tile = Image.fromarray(frame).resize((w * scale, h * scale), Image.NEAREST)
            out.paste(tile, (label_w + c * (w * scale + gap), y))
    out.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vae", action="append", required=True, metavar="NAME=PATH",
                    help="an autoencoder to show: a pipeline folder or OUT/final of `kinema train vae` (repeatable)")
    ap.add_argument("--n", type=int, default=6, help="scenes to show")
    ap.add_argument("--category", default="single", help="benchmark category the scenes come from")
    ap.add_argument("--split", default="seen", choices=["seen", "heldout"])
    ap.add_argument("--frames", default="0,12,23", help="frame indices to show")
    ap.add_argument("--scale", type=int, default=1, help="pixel size of each frame in the sheet")
    ap.add_argument("--small-star", action="store_true", help="only scenes that ask for a small star")
    ap.add_argument("-o", "--out", default="roundtrip_sheet.png")
    args = ap.parse_args()

    from kinema.eval.prompts import benchmark_items
    from kinema.train.components import load_vae

    vaes = []
    for item in args.vae:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--vae {item!r}: expected NAME=PATH")
        vaes.append((name, load_vae(path).eval()))
    shown = [int(i) for i in args.frames.split(",")]
    pool = benchmark_items(max(args.n, 50 if args.small_star else 1))
    items = [i for i in pool if i.category == args.category and i.split == args.split
             and (not args.small_star or any(is_small_star(o) for o in i.spec.objects))]
    if not items:
        raise SystemExit(f"no benchmark items in category {args.category!r}, split {args.split!r}")
    rows = []
    for item in items[: args.n]:
        truth = render_for_autoencoder(item.spec, max(shown) + 1)
        rows.append((" ".join(item.prompt.split()[1:6]), [truth[i] for i in shown]))
        for name, vae in vaes:
            rec = round_trip(vae, truth, item.spec.fps)
            rows.append((f"  {name}", [rec[i] for i in shown]))
    sheet(rows, args.out, scale=args.scale)
    print(f"{len(items[: args.n])} scenes x {len(vaes)} autoencoders -> {args.out}")


if __name__ == "__main__":
    main()
