"""Training curves of a model's successive runs, one after another: the autoencoder's PSNR and
the transformer's loss per logged window, against the optimiser steps taken so far. Each run is a
`kinema train` metrics.jsonl; runs of one stage are drawn in order, as the fine-tunes were made.
A transformer run with the object term logs its flow part apart (`flow_loss`); that part is drawn,
so the curve compares with runs without the term.

    python benchmarks/plot_training.py -o curves.png \\
        --vae v0=PATH/train_vae_metrics.jsonl --vae v1=... --dit v0=... --dit v1=...

Needs matplotlib (the `[bench]` extra).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_windows(path: Path, keys: tuple[str, ...]) -> tuple[str, list[tuple[int, float]]]:
    """The first of `keys` that the run logs, and (step, value) of every training window with it."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    records = [r for r in records if "event" not in r]
    for key in keys:
        rows = [(int(r["step"]), float(r[key])) for r in records if key in r]
        if rows:
            return key, rows
    raise SystemExit(f"{path}: no training windows with {' or '.join(map(repr, keys))}")


def smooth(values: list[float], width: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= width:
            total -= values[i - width]
        out.append(total / min(i + 1, width))
    return out


def draw(ax, runs: list[tuple[str, Path]], keys: tuple[str, ...], title: str, ylabel: str, width: int,
         log: bool) -> None:
    import matplotlib

    offset = 0
    if len(runs) <= 10:
        palette = matplotlib.colormaps["tab10"].colors
    else:  # tab20 without its two greys, which the raw traces behind the curves already use
        palette = [c for j, c in enumerate(matplotlib.colormaps["tab20"].colors) if j not in (14, 15)]
    for i, (name, path) in enumerate(runs):
        key, rows = read_windows(path, keys)
        steps = [offset + s for s, _ in rows]
        note = "" if key == keys[-1] else f", {key}"
        ax.plot(steps, [v for _, v in rows], color="0.85", linewidth=0.8)
        ax.plot(steps, smooth([v for _, v in rows], width), linewidth=1.6, color=palette[i % len(palette)],
                label=f"{name} ({rows[-1][0]:,} steps{note})")
        offset = steps[-1]
        ax.axvline(offset, color="0.6", linestyle=":", linewidth=0.8)
    ax.set_title(title)
    ax.set_xlabel("optimiser steps, runs one after another")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)  # below: no curve hidden


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vae", action="append", default=[], metavar="NAME=JSONL", help="an autoencoder run, in order")
    ap.add_argument("--dit", action="append", default=[], metavar="NAME=JSONL", help="a transformer run, in order")
    ap.add_argument("--smooth", type=int, default=8, help="windows in the moving average")
    ap.add_argument("-o", "--out", required=True, help="PNG to write")
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def parse(items: list[str]) -> list[tuple[str, Path]]:
        runs = []
        for item in items:
            name, sep, path = item.partition("=")
            if not sep or not Path(path).is_file():
                raise SystemExit(f"{item!r}: expected NAME=PATH of an existing metrics.jsonl")
            runs.append((name, Path(path)))
        return runs

    panels = [(parse(args.vae), ("psnr",), "autoencoder: reconstruction PSNR (training batches)", "PSNR, dB", False),
              (parse(args.dit), ("flow_loss", "loss"), "transformer: rectified-flow loss", "loss (log scale)",
               True)]
    panels = [p for p in panels if p[0]]
    if not panels:
        raise SystemExit("give at least one --vae or --dit run")
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5.6), squeeze=False)
    for ax, (runs, keys, title, ylabel, log) in zip(axes[0], panels):
        draw(ax, runs, keys, title, ylabel, args.smooth, log)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
