"""Is a small object's shape still in the autoencoder's latents, or lost by the encoder?

Renders still scenes of one small object (random shape, colour, background and position), encodes
them with the model's VAE, and trains a small classifier (a probe) to tell the shape from the
latent cells around the object. The probe's accuracy on unseen scenes is set against the world
analyzer's shape accuracy on the same scenes decoded, and on the scenes themselves:

- probe high, decoded low: the shape is in the latents and the decoder loses it (train the decoder);
- probe low too: the encoder throws the shape away (a new autoencoder, and then a new transformer).

    python benchmarks/latent_shape_probe.py [--model PATH] [--decoder NAME=PATH ...] [--generated N]
        [--size small] [--train 6000] [--test 2000] [--moving]

With --moving the object moves, at the speed it has in the default 24-frame clip: each scene is 5
consecutive frames of a 25-frame scene, the probe reads the second latent frame (frames 1-4, packed
four to a latent frame) around the object's place in the middle of those four, and the analyzer
reads decoded frame 2.

With --generated N the probe also reads the transformer's own latents for N one-object prompts:
whether the transformer drew the asked shape into the latents, and how often the decoder shows it.
With --moving too, those prompts ask for a moving object and the probe reads latent frame 1 at
the object's place in decoded frames 2 and 3 (where frames 1-4 are packed), like the scenes'.

With --generated-pairs N (and --moving) it reads the transformer's latents for N of the benchmark's
two-object prompts (relation and binding, both splits) that ask for a small moving star, where
relation and binding fail most: every small moving object of those videos, found by its asked
colour (the two objects' colours differ), is read like the one-object prompts'.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch


def still_scene(rng: np.random.Generator, size: str, width: int, height: int, num_frames: int = 5):
    """One still object of `size` at a random place, colour, shape and background."""
    from kinema.world.spec import BACKGROUNDS, COLORS, SHAPES, ObjectSpec, SceneSpec

    obj = ObjectSpec(shape=str(rng.choice(SHAPES)), color=str(rng.choice(list(COLORS))), size=size,
                     motion="still", start=(float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8))))
    return SceneSpec(width=width, height=height, fps=12, num_frames=num_frames,
                     background=str(rng.choice(list(BACKGROUNDS))), objects=[obj])


def moving_scene(rng: np.random.Generator, size: str, width: int, height: int, num_frames: int = 25):
    """One object of `size` moving in a random direction at a random place, colour, shape and
    background, drawn for `num_frames` frames (the world's own distances)."""
    from kinema.world.sample import place_objects
    from kinema.world.spec import BACKGROUNDS, COLORS, SHAPES, ObjectSpec, SceneSpec

    obj = ObjectSpec(shape=str(rng.choice(SHAPES)), color=str(rng.choice(list(COLORS))), size=size,
                     motion=str(rng.choice(["left", "right", "up", "down"])))
    spec = SceneSpec(width=width, height=height, fps=12, num_frames=num_frames,
                     background=str(rng.choice(list(BACKGROUNDS))), objects=[obj])
    if not place_objects(spec, rng):
        raise RuntimeError(f"could not place a {size} object in {width}x{height}")
    return spec


def latent_window(z: torch.Tensor, x: float, y: float, patch: int, radius: int) -> torch.Tensor:
    """Latent cells [C, 2r, 2r] of the first latent frame nearest the pixel centre (x, y), zero-padded."""
    padded = torch.nn.functional.pad(z[:, 0], (radius, radius, radius, radius))
    cx, cy = int(round(x / patch)), int(round(y / patch))
    return padded[:, cy : cy + 2 * radius, cx : cx + 2 * radius]


def analyzer_shape(frame: np.ndarray, background: str) -> str | None:
    """The analyzer's shape for the largest object it detects in `frame`, or None."""
    from kinema.world.analyze import detect

    found = detect(frame, background)
    return max(found, key=lambda d: d.area).shape if found else None


def decoded_frames(vae, z: torch.Tensor, frame: int = 0) -> np.ndarray:
    """Normalised latents [B, C, t, h, w] decoded; frame `frame` of each as uint8 [B, H, W, 3]."""
    with torch.no_grad():
        y = vae.decode(z).clamp(-1, 1)
    return ((y[:, :, frame].permute(0, 2, 3, 1) + 1.0) * 127.5).round().byte().numpy()


def build(vae, n: int, seed: int, size: str, width: int, height: int, radius: int, batch: int = 32,
          decoders: tuple = (), read_frame: int = 0, moving: bool = False):
    """(probe inputs [n, F] from latent frame 0 (moving: 1), shape labels [n], analyzer shape on
    frame `read_frame` of the scene, and of it decoded by `vae` and then by each of `decoders`)."""
    from kinema.world import render
    from kinema.world.spec import SHAPES

    rng = np.random.default_rng(seed)
    frames_wanted = 1 + 4 * max(1, -(-read_frame // 4))  # the fewest 1+4k frames that hold read_frame
    if moving:  # 5 frames of a 25-frame scene, from a random frame on; (scene, first frame) pairs
        specs = [moving_scene(rng, size, width, height) for _ in range(n)]
        offsets = [int(rng.integers(0, 21)) for _ in range(n)]
    else:
        specs = [still_scene(rng, size, width, height, frames_wanted) for _ in range(n)]
        offsets = [0] * n
    feats, truth_reads = [], []
    decoded_reads: list[list] = [[] for _ in range(1 + len(decoders))]
    for i in range(0, n, batch):
        chunk, starts = specs[i : i + batch], offsets[i : i + batch]
        frames = np.stack([render(s)[f0 : f0 + frames_wanted] for s, f0 in zip(chunk, starts)])  # [B, T, H, W, 3]
        x = torch.from_numpy(frames).permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)
        with torch.no_grad():
            z = vae.encode(x)
        patch = width // z.shape[-1]  # pixels per latent cell
        for reads, dec in zip(decoded_reads, (vae, *decoders)):
            reads.extend(analyzer_shape(f, s.background) for f, s in zip(decoded_frames(dec, z, read_frame), chunk))
        for s, zi, clip, f0 in zip(chunk, z, frames, starts):
            if moving:  # latent frame 1 holds clip frames 1-4: the object's place midway through them
                cx, cy = s.center(s.objects[0], f0 + 2.5)
                feats.append(latent_window(zi[:, 1:], cx * width, cy * height, patch, radius).flatten())
            else:
                o = s.objects[0]
                feats.append(latent_window(zi, o.start[0] * width, o.start[1] * height, patch, radius).flatten())
            truth_reads.append(analyzer_shape(clip[read_frame], s.background))
    labels = torch.tensor([SHAPES.index(s.objects[0].shape) for s in specs])
    return torch.stack(feats), labels, truth_reads, decoded_reads


def generated(pipe, n: int, size: str, width: int, height: int, radius: int, seed: int = 3, decoders: tuple = (),
              moving: bool = False):
    """The transformer's own latents for `n` prompts of one object of `size`, still (or `moving`):
    (probe inputs at the object the analyzer finds in the decoded first frame (moving: latent
    frame 1, at the object's place in decoded frames 2 and 3), asked shape labels, analyzer shape
    on the video's first frame (moving: frame 2), as generated and then decoded by each of
    `decoders`). Videos in which the analyzer finds nothing there are left out."""
    from kinema.world.analyze import detect
    from kinema.world.captions import canonical_caption
    from kinema.world.spec import SHAPES

    rng = np.random.default_rng(seed)
    feats, labels = [], []
    decoded_reads: list[list] = [[] for _ in range(1 + len(decoders))]
    read = 2 if moving else 0
    for i in range(n):
        spec = moving_scene(rng, size, width, height) if moving else still_scene(rng, size, width, height)
        video, windows = pipe.generate(canonical_caption(spec), size=f"{width}x{height}", seed=i,
                                       progress=False, return_latents=True)
        found = [detect(np.asarray(video.frames[f]), spec.background) for f in ((2, 3) if moving else (0,))]
        if not all(found):
            continue
        objs = [max(f, key=lambda d: d.area) for f in found]
        z = windows[0]["latents"].float()                              # [1, C, t, h, w]
        feats.append(latents_at(z, objs, moving, width, radius))
        labels.append(SHAPES.index(spec.objects[0].shape))
        decoded_reads[0].append(objs[0].shape)
        for reads, dec in zip(decoded_reads[1:], decoders):
            reads.append(analyzer_shape(decoded_frames(dec, z, read)[0], spec.background))
    return torch.stack(feats), torch.tensor(labels), decoded_reads


def latents_at(z: torch.Tensor, objs: list, moving: bool, width: int, radius: int) -> torch.Tensor:
    """Probe inputs from generated latents z [1, C, t, h, w] at the mean place of `objs` (the
    analyzer's detections of one object): latent frame 1 for a moving object, else frame 0."""
    x, y = float(np.mean([o.x for o in objs])), float(np.mean([o.y for o in objs]))
    return latent_window(z[0, :, 1:] if moving else z[0], x, y, width // z.shape[-1], radius).flatten()


def small_moving_star_items(width: int, height: int):
    """The benchmark's relation and binding prompts (seed 0; index by index, relation then binding,
    seen then held-out) that ask for a small moving star, without end."""
    from kinema.eval.prompts import make_item

    for index in itertools.count():
        for category in ("relation", "binding"):
            for split in ("seen", "heldout"):
                item = make_item(category, split, index, width=width, height=height)
                if any(o.shape == "star" and o.size == "small" and o.motion != "still" for o in item.spec.objects):
                    yield item


def generated_pairs(pipe, n: int, width: int, height: int, radius: int, decoders: tuple = ()):
    """The transformer's latents for the first `n` of `small_moving_star_items`: the same three
    things as `generated`, one row per small moving object of those videos that the analyzer finds,
    by its asked colour, in decoded frames 2 and 3."""
    from kinema.world.analyze import detect
    from kinema.world.spec import SHAPES

    feats, labels = [], []
    decoded_reads: list[list] = [[] for _ in range(1 + len(decoders))]
    for item in itertools.islice(small_moving_star_items(width, height), n):
        video, windows = pipe.generate(item.prompt, size=f"{width}x{height}", seed=0, progress=False,
                                       return_latents=True)
        z = windows[0]["latents"].float()
        found = [detect(np.asarray(video.frames[f]), item.spec.background) for f in (2, 3)]
        # each other decoder's frame 2 of this video, decoded once for all its small moving objects
        found_by_decoder = [detect(decoded_frames(dec, z, 2)[0], item.spec.background) for dec in decoders]
        for o in item.spec.objects:
            if o.size != "small" or o.motion == "still":
                continue
            hits = [[d for d in f if d.color == o.color] for f in found]
            if not all(hits):
                continue
            objs = [max(h, key=lambda d: d.area) for h in hits]
            feats.append(latents_at(z, objs, True, width, radius))
            labels.append(SHAPES.index(o.shape))
            decoded_reads[0].append(objs[0].shape)
            for reads, found_dec in zip(decoded_reads[1:], found_by_decoder):
                hits_dec = [d for d in found_dec if d.color == o.color]
                reads.append(max(hits_dec, key=lambda d: d.area).shape if hits_dec else None)
    return torch.stack(feats), torch.tensor(labels), decoded_reads


def train_probe(x: torch.Tensor, y: torch.Tensor, classes: int, epochs: int = 300, seed: int = 0,
                hidden: int = 256):
    """A one-hidden-layer MLP (`hidden` 0: a linear classifier), full batch, Adam, on standardised
    inputs; returns its predictor."""
    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0) + 1e-6
    net = (torch.nn.Linear(x.shape[1], classes) if hidden == 0 else torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], hidden), torch.nn.GELU(), torch.nn.Linear(hidden, classes)))
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-3)
    xs = (x - mean) / std
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xs), y).backward()
        opt.step()
    return lambda q: net((q - mean) / std).argmax(-1)


def print_table(title: str, labels: torch.Tensor, columns: dict[str, np.ndarray]) -> None:
    """Accuracy per asked shape and overall, one column per named array of per-item hits."""
    from kinema.world.spec import SHAPES

    print(title)
    widths = [max(20, len(name) + 2) for name in columns]
    print(f"{'shape':<10}" + "".join(f"{name:>{w}}" for name, w in zip(columns, widths)))
    for k, shape in enumerate(SHAPES):
        m = (labels == k).numpy()
        cells = [f"{hits[m].mean():.1%}" if m.any() else "-" for hits in columns.values()]
        print(f"{shape:<10}" + "".join(f"{c:>{w}}" for c, w in zip(cells, widths)))
    print(f"{'all':<10}" + "".join(f"{hits.mean():>{w}.1%}" for hits, w in zip(columns.values(), widths)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="pipeline or VAE folder (default: the shipped kinema-tiny)")
    ap.add_argument("--decoder", action="append", default=[], metavar="NAME=PATH",
                    help="another VAE folder with the same encoder (a decoder fine-tune), read alongside")
    ap.add_argument("--size", default="small", choices=["small", "large"])
    ap.add_argument("--train", type=int, default=6000, help="scenes the probe learns from")
    ap.add_argument("--test", type=int, default=2000, help="unseen scenes it is scored on")
    ap.add_argument("--radius", type=int, default=2, help="latent cells each side of the object's centre")
    ap.add_argument("--resolution", default="128x128")
    ap.add_argument("--read-frame", type=int, default=0,
                    help="the decoded frame the analyzer reads (0: the first latent frame's own; 8: two latent frames on)")
    ap.add_argument("--moving", action="store_true",
                    help="objects that move at the default clip's speed; the probe reads latent frame 1, the "
                         "analyzer decoded frame 2 (--read-frame is then 2)")
    ap.add_argument("--generated", type=int, default=0,
                    help="also read the model's transformer's latents for this many prompts of one object (still, or "
                         "moving with --moving)")
    ap.add_argument("--generated-pairs", type=int, default=0,
                    help="with --moving: also read the transformer's latents for this many of the benchmark's "
                         "relation and binding prompts that ask for a small moving star")
    args = ap.parse_args()

    from kinema.pipeline import Pipeline
    from kinema.train.components import load_vae
    from kinema.world.spec import SHAPES

    width, height = (int(v) for v in args.resolution.split("x"))
    if args.generated_pairs and not args.moving:
        ap.error("--generated-pairs reads moving stars: add --moving")
    if args.moving:
        args.read_frame = 2
    pipe = Pipeline.from_pretrained(args.model) if args.generated or args.generated_pairs else None
    vae = pipe.vae if pipe else load_vae(args.model) if args.model else Pipeline.from_pretrained().vae
    vae.eval().float()
    named = [d.split("=", 1) if "=" in d else (d, d) for d in args.decoder]
    decoders = tuple(load_vae(path).eval().float() for _, path in named)
    names = ["decoded"] + [f"decoded by {name}" for name, _ in named]
    t0 = time.perf_counter()
    xtr, ytr, _, _ = build(vae, args.train, 1, args.size, width, height, args.radius, moving=args.moving)
    xte, yte, truth_reads, decoded_reads = build(vae, args.test, 2, args.size, width, height, args.radius,
                                                 decoders=decoders, read_frame=args.read_frame, moving=args.moving)
    predict = train_probe(xtr, ytr, len(SHAPES))
    with torch.no_grad():
        probe_train = (predict(xtr) == ytr).float().mean().item()
        probe_test = (predict(xte) == yte).numpy()

    def hits(reads, labels):
        return np.array([r == SHAPES[k] for r, k in zip(reads, labels.tolist())])

    which = "moving objects, second latent frame" if args.moving else "still objects, first latent frame"
    print_table(f"latent shape probe: {args.size} {which}, {width}x{height}, "
                f"{2 * args.radius}x{2 * args.radius} cells x {vae.config.latent_channels} channels, "
                f"{args.train} train / {args.test} test scenes, {time.perf_counter() - t0:.0f} s "
                f"(probe on its own training scenes: {probe_train:.1%}); the analyzer reads decoded frame "
                f"{args.read_frame}",
                yte, {"probe on latents": probe_test,
                      **{f"analyzer, {n}": hits(r, yte) for n, r in zip(names, decoded_reads)},
                      "analyzer, scene": hits(truth_reads, yte)})
    def report_generated(title: str, xg: torch.Tensor, yg: torch.Tensor, reads: list[list]) -> None:
        with torch.no_grad():
            probe_gen = (predict(xg) == yg).numpy()
        print()
        print_table(title, yg, {"probe on latents": probe_gen,
                                **{f"analyzer, {n}": hits(r, yg) for n, r in zip(names, reads)}})

    if args.generated:
        xg, yg, reads = generated(pipe, args.generated, args.size, width, height, args.radius, decoders=decoders,
                                  moving=args.moving)
        report_generated(f"the transformer's latents: {len(yg)} of {args.generated} prompts with an object found "
                         f"(position from the analyzer on the generated "
                         f"{'frames 2 and 3' if args.moving else 'first frame'})", xg, yg, reads)
    if args.generated_pairs:
        xg, yg, reads = generated_pairs(pipe, args.generated_pairs, width, height, args.radius, decoders=decoders)
        report_generated(f"the transformer's latents, two-object prompts: {len(yg)} small moving objects found "
                         f"by their colour in {args.generated_pairs} relation and binding prompts that ask for a "
                         f"small moving star (position from the analyzer on the generated frames 2 and 3)",
                         xg, yg, reads)


if __name__ == "__main__":
    main()
