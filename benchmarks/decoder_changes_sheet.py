"""Where two decoders part on the same transformer output: the benchmark videos whose verdict differs
between two `kinema eval` runs decoded from one run's kept latents (`--latents-from`), drawn by each
decoder side by side (first, middle and last frame), the videos one decoder gets right first.

    python benchmarks/decoder_changes_sheet.py KEPT_RUN --a MODEL_A RUN_A --b MODEL_B RUN_B \\
        [--names A B] [--categories binding,relation] [--max 6] -o sheet.png

KEPT_RUN is the run that kept the latents (`kinema eval --keep-latents`); RUN_A and RUN_B are the
two runs judged on them (one may be KEPT_RUN itself), MODEL_A and MODEL_B their pipelines.
"""

from __future__ import annotations

import argparse
import sys
from types import SimpleNamespace

import numpy as np


def verdict(sample: dict) -> bool:
    """The category's own verdict (relation, binding, count), or everything right for single objects."""
    v = sample["verdict"]
    return bool(v.get(sample["category"], v.get("everything")))


def changed_videos(samples_a: list[dict], samples_b: list[dict], categories: set[str]) -> list[tuple[dict, dict]]:
    """(sample in A, sample in B) pairs whose category verdict differs: those B gets right first."""
    from kinema.eval.kept_latents import record_key

    by_key = {record_key(s): s for s in samples_a}
    pairs = []
    for b in samples_b:
        a = by_key.get(record_key(b))
        if a is None or b["category"] not in categories:
            continue
        if verdict(a) != verdict(b):
            pairs.append((a, b))
    pairs.sort(key=lambda ab: (not verdict(ab[1]), ab[1]["category"], ab[1]["split"]))
    return pairs


def _detected_text(sample: dict) -> str:
    return ",".join(f"{d['color'][:3]} {d['shape']}" for d in sample.get("detected", []))[:22]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kept_run")
    ap.add_argument("--a", nargs=2, metavar=("MODEL", "RUN"), required=True)
    ap.add_argument("--b", nargs=2, metavar=("MODEL", "RUN"), required=True)
    ap.add_argument("--names", nargs=2, default=["A", "B"])
    ap.add_argument("--categories", default="binding,relation")
    ap.add_argument("--max", type=int, default=6, help="videos shown per direction (gained, lost)")
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args()

    from kinema.eval.compare import samples_or_exit
    from kinema.eval.kept_latents import KeptLatents
    from kinema.pipeline import Pipeline
    from kinema.video import grid_image

    categories = {c.strip() for c in args.categories.split(",") if c.strip()}
    program = "decoder_changes_sheet"
    pairs = changed_videos(samples_or_exit(args.a[1], program), samples_or_exit(args.b[1], program), categories)
    gained = [p for p in pairs if verdict(p[1])]
    lost = [p for p in pairs if not verdict(p[1])]
    shown = gained[:args.max] + lost[:args.max]
    print(f"{len(pairs)} videos change verdict in {', '.join(sorted(categories))}: "
          f"{len(gained)} right only with {args.names[1]}, {len(lost)} only with {args.names[0]}; "
          f"showing {min(len(gained), args.max)} and {min(len(lost), args.max)}")
    if not shown:
        sys.exit("no video changes its verdict between the two runs in these categories")
    jobs = [(SimpleNamespace(category=b["category"], split=b["split"], index=b["index"], prompt=b["prompt"]),
             b["seed"]) for _, b in shown]

    frames_by_side = []
    for model, _ in (args.a, args.b):
        pipe = Pipeline.from_pretrained(model)
        latents, metadata = KeptLatents(args.kept_run, pipe).batch(jobs)
        frames_by_side.append([v.frames for v in pipe.videos_from_latents(latents, metadata)])

    images, labels = [], []
    for k, (a, b) in enumerate(shown):
        prompt = b["prompt"]
        for side, (name, sample) in enumerate(zip(args.names, (a, b))):
            frames = frames_by_side[side][k]
            judged = "right" if verdict(sample) else "wrong"
            for j, i in enumerate([0, len(frames) // 2, len(frames) - 1]):
                images.append(np.asarray(frames[i]))
                if j == 0:
                    labels.append(f"{name} {judged} {sample['category'][:3]}/{sample['split'][:4]}")
                elif j == 1:
                    labels.append(_detected_text(sample))
                else:
                    labels.append(prompt[side * 22:(side + 1) * 22])
    title = (f"same latents, two decoders: {args.names[0]} (left) and {args.names[1]} (right); "
             "verdict, what the analyzer read, the prompt")
    grid_image(images, labels, columns=6, title=title).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
