"""Does a model follow the motion word, axis by axis?

Two readings, side by side per axis (left/right, up/down):

- From `kinema eval` runs (positional arguments: run folders or samples files): the single-object
  prompts' asked motion against the motion the analyzer read on the object of the asked colour:
  as asked, reversed (e.g. "right" for "left"), another motion (still, the other axis) or none.
- From models (`--model NAME=PATH`): N single-object scenes of the world's train split, each
  written with all four motion words and generated with the same seed, so a scene's four videos
  differ only by the word. Besides as asked / reversed it prints where the object starts (the mean
  first-seen x for left and right, y for up and down; the world starts a "moves left" object right
  of where a "moves right" one starts), and the word's effect: the mean absolute pixel difference
  between the two opposite words' videos of one seed, next to that between two seeds of one prompt
  (how much the noise alone changes a video). A model that ignores a pair of words answers as often
  reversed as asked, starts both words' objects at the same place, and its opposite-word videos
  differ far less than its two-seed ones.

- From the text encoder alone (`--text-probe N`): N single-object world captions with a motion
  (train split, random phrasings), the encoder's states averaged over the caption; per axis, the
  distance between the two words' mean states, and a linear probe's accuracy on held-out captions
  at a strong and a weak L2 penalty (how salient, and how separable, the two words are to a
  transformer that reads these states); and at the word itself (the token where two captions
  that differ only by the word differ first), the distance between the two words' mean states
  over their spread within each word, which is what the transformer's cross-attention reads;
  and how many of each word's uses in N captions of any scene are relation phrases ("left of").
- `--paths` (with `--model`): which of the transformer's two ways of reading the text carries the
  word: every scene generated with its token states saying one word and its pooled summary (the
  mean state, which modulates every block) saying the opposite, counted as following the tokens,
  the summary, or neither.
- `--velocity T [T ...]` (with `--model`): the same reading without sampling, from one forward
  pass at each noise level t: every scene rendered moving one way (placed as the world would
  place it), encoded and noised once, then given to the transformer written with each of the
  axis's two words; per axis and t, the share of cross-attention (over blocks, heads and video
  tokens) that falls on the word's own token, and the RMS difference between the two predicted
  velocities. Near pure noise only the words can make that difference.
- `--cache-means DIR`: what the data offer that reading, from a latent cache of one-object clips
  (`kinema train`'s `data.latent_cache_dir`): per axis, the RMS of the difference between the
  mean latent clip of the captions with each word. Near pure noise the best prediction is the
  mean clip of the caption, so the best velocity difference there is about this much.

    python benchmarks/motion_words.py benchmarks/results/kinema-tiny/samples.jsonl.gz
    python benchmarks/motion_words.py --model v9=shipped --model ft=runs/ft/final --guidance ft=5 \\
        [--n 32] [--size 128x128]
    python benchmarks/motion_words.py --text-probe 3000
    python benchmarks/motion_words.py --model v9=shipped --paths --n 24
    python benchmarks/motion_words.py --model sw=runs/sw/final --swapped sw --size 64x64
    python benchmarks/motion_words.py --model v9=shipped --velocity 0.95 0.7 0.4 --n 24
    python benchmarks/motion_words.py --cache-means runs/lcache_single

`--swapped NAME`: model NAME was trained on latents with height and width swapped
(`benchmarks/probe_train.py --swap-hw`); it is run as swap(f(swap(x))), so its videos come out the
right way round and its "left/right" line reads a motion it made along its own height axis.
`--rename-word OLD=NEW`: the prompts say NEW for OLD (for a model trained with
`probe_train.py --rename-word`); the lines still name the motion by its world word.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relation_placement import share  # noqa: E402  (a sibling script)
from relation_stills import load_model, models_and_guidance, size_or_exit  # noqa: E402
from probe_train import rename_words, renames_or_exit, swap_hw  # noqa: E402

RENAMES: dict[str, str] = {}  # --rename-word: prompt words to write differently

AXES = {"left/right": ("left", "right"), "up/down": ("up", "down")}
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
OUTCOMES = ("asked", "reversed", "other", "none")
DIRECTIONS = ("left", "right", "up", "down")


def outcome(asked: str, read: str | None) -> str:
    """'asked', 'reversed', 'other' (still, the other axis) or 'none' (no object of the colour)."""
    if read is None:
        return "none"
    return "asked" if read == asked else "reversed" if read == OPPOSITE[asked] else "other"


def read_motion(detected: list[dict], color: str) -> tuple[str | None, list[float] | None]:
    """The motion and first-seen (x, y) of the longest-seen object of `color`, or (None, None)."""
    mine = [d for d in detected if d["color"] == color]
    if not mine:
        return None, None
    best = max(mine, key=lambda d: d.get("frames_seen", 0))
    first = best.get("first_xy")  # eval samples keep it; the analyzer gives the whole track
    if first is None and best.get("track"):
        first = next((p for p in best["track"] if p is not None), None)
    return best["motion"], first


def tally_samples(records: list[dict]) -> dict[str, Counter]:
    """Per axis, the outcomes of an eval run's single-object prompts that ask for a motion."""
    out = {axis: Counter() for axis in AXES}
    for r in records:
        if r["category"] != "single":
            continue
        obj = r["spec"]["objects"][0]
        if obj["motion"] not in OPPOSITE:
            continue
        axis = next(a for a, words in AXES.items() if obj["motion"] in words)
        read, _ = read_motion(r["detected"], obj["color"])
        out[axis][outcome(obj["motion"], read)] += 1
    return out


def axis_line(axis: str, c: Counter) -> str:
    n = sum(c.values())
    asked, rev = c["asked"], c["reversed"]
    return (f"  {axis:<10} {n} videos: " + ", ".join(f"{o} {share(c[o], n)}" for o in OUTCOMES)
            + f"; asked of asked or reversed {share(asked, asked + rev)}")


def run_swapped(pipe) -> None:
    """Make `pipe`'s transformer, trained on h/w-swapped latents, answer in normal latents:
    f'(x) = swap(f(swap(x))), x [B, C, t, h, w]."""
    dit = pipe.transformer
    forward = dit.forward

    def swapped_forward(x, *args, **kwargs):
        return swap_hw(forward(swap_hw(x), *args, **kwargs))

    dit.forward = swapped_forward


def scenes(n: int, seed: int, width: int, height: int) -> list:
    """N one-object scenes of the train split whose object is in the train split with every one of
    the four motion words (so no word makes a held-out combination)."""
    from kinema.world.sample import sample_spec

    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        spec = sample_spec(rng, split="train", width=width, height=height, num_objects=1)
        obj = spec.objects[0]
        if any(_with_motion(obj, m).is_heldout() for m in DIRECTIONS):
            continue
        out.append(spec)
    return out


def _with_motion(obj, motion: str):
    from dataclasses import replace

    return replace(obj, motion=motion)


def prompt(spec, motion: str) -> str:
    from dataclasses import replace

    from kinema.world.captions import canonical_caption

    return rename_words(canonical_caption(replace(spec, objects=[_with_motion(spec.objects[0], motion)])), RENAMES)


def probe_model(pipe, specs: list, guidance: float | None, other_seed: int = 1000) -> list[str]:
    """Generate every scene with each motion word (seed i for scene i), and one more video of the
    "left" and "up" prompts with another seed; return the printed lines."""
    from kinema.world.analyze import analyze_video

    words = {m: [prompt(s, m) for s in specs] for m in DIRECTIONS}
    size = f"{specs[0].width}x{specs[0].height}"
    seeds = list(range(len(specs)))
    frames, reads = {}, {}
    for m in DIRECTIONS:
        videos = pipe.generate_batch(words[m], seeds=seeds, guidance=guidance, size=size)
        frames[m] = [np.asarray(v.frames, dtype=np.float32) for v in videos]
        reads[m] = [read_motion(analyze_video(v)["objects"], s.objects[0].color) for v, s in zip(videos, specs)]
    lines = []
    for axis, (a, b) in AXES.items():
        c = Counter(outcome(m, r[0]) for m in (a, b) for r in reads[m])
        lines.append(axis_line(axis, c))
        k = 0 if axis == "left/right" else 1
        starts = {m: [r[1][k] for r in reads[m] if r[1] is not None] for m in (a, b)}
        world = {m: float(np.mean([_with_motion_start(s, m)[k] for s in specs])) for m in (a, b)}
        coord = "x" if k == 0 else "y"
        lines.append(f"             start {coord}: " + ", ".join(
            f"'{m}' {np.mean(starts[m]):.3f} (the world's scenes {world[m]:.3f})" for m in (a, b) if starts[m]))
        other = pipe.generate_batch(words[a], seeds=[s + other_seed for s in seeds], guidance=guidance, size=size)
        word_effect = float(np.mean([np.abs(x - y).mean() for x, y in zip(frames[a], frames[b])]))
        noise_effect = float(np.mean([np.abs(x - np.asarray(v.frames, dtype=np.float32)).mean()
                                      for x, v in zip(frames[a], other)]))
        lines.append(f"             '{a}' vs '{b}', same seed: {word_effect:.2f} levels apart on average; "
                     f"'{a}' with two seeds: {noise_effect:.2f} (ratio {word_effect / max(noise_effect, 1e-9):.2f})")
    return lines


def word_token(te, text: str, word: str) -> int:
    """The position of `word`'s (single) token in `text`'s padded token ids."""
    ids = list(te.tokenizer([text], padding="max_length", truncation=True, max_length=te.max_length)["input_ids"][0])
    word_id = te.tokenizer([word], padding="max_length", truncation=True, max_length=4)["input_ids"][0][1]
    return ids.index(word_id)


def probe_velocity(pipe, specs: list, timesteps: list[float]) -> list[str]:
    """Per axis and t: attention share on the word's token and the RMS velocity difference the
    word makes, from one forward pass per word on the same noisy clip (see the module note)."""
    import torch
    from dataclasses import replace

    from kinema.diffusion.flow import add_noise
    from kinema.video import Video
    from kinema.world.render import render

    dit, te, vae = pipe.transformer, pipe.text_encoder, pipe.vae
    inputs = {}  # per axis: each scene's clip moving the first word's way, and both words' text
    for axis, (a, b) in AXES.items():
        inputs[axis] = []
        for spec in specs:
            moved = replace(spec, objects=[replace(_with_motion(spec.objects[0], a),
                                                   start=_with_motion_start(spec, a))])
            clip = Video(render(moved)).to_tensor()[None]
            with torch.no_grad():
                x0 = vae.encode(clip.to(pipe.device)).float()
            words = []
            for word in (a, b):
                text = prompt(spec, word)
                states, mask = te.encode([text])
                words.append((states.to(x0.device), mask.to(x0.device), word_token(te, text, RENAMES.get(word, word))))
            inputs[axis].append((x0, words))
    lines = []
    for t in timesteps:
        parts = []
        for axis in AXES:
            shares, diffs = [], []
            for i, (x0, words) in enumerate(inputs[axis]):
                noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(i)).to(x0.device)
                tt = torch.full((1, x0.shape[2]), float(t), device=x0.device)
                x_t = add_noise(x0, noise, tt)
                velocities = []
                for states, mask, token in words:
                    maps: list = []
                    with torch.no_grad():
                        velocities.append(dit(x_t, tt, states, mask, cross_attention=maps).float())
                    shares.append(float(torch.stack([m[0, :, :, token].float().mean() for m in maps]).mean()))
                diffs.append(float((velocities[0] - velocities[1]).pow(2).mean().sqrt()))
            parts.append(f"{axis} attention on the word {np.mean(shares):.3f}, "
                         f"velocity difference {np.mean(diffs):.4f}")
        lines.append(f"  t = {t:g}: " + "; ".join(parts))
    return lines


WORD_FORMS = {"left": r"\bleft\b", "right": r"\bright\b", "up": r"\b(up|upward|rises|rising)\b",
              "down": r"\b(down|downward|falls|falling)\b"}


def cache_means(root: str) -> list[str]:
    """Per axis, the RMS difference between the mean latent clips of the two words' captions
    (captions naming exactly one direction), over a latent cache's clips of one shape."""
    import re

    from kinema.data.latent_cache import LatentCache

    cache = LatentCache(root)
    sums: dict[str, object] = {}
    counts = Counter()
    for n in range(len(cache)):
        entry = cache.entry(n)
        for z, text in zip(entry["latents"], entry["caption"]):
            hits = [w for w, form in WORD_FORMS.items() if re.search(form, text)]
            if len(hits) == 1:
                w = hits[0]
                sums[w] = sums[w] + z.double() if w in sums else z.double()
                counts[w] += 1
    lines = []
    for axis, (a, b) in AXES.items():
        if not (counts[a] and counts[b]):
            lines.append(f"  {axis}: no clips of both words")
            continue
        d = sums[a] / counts[a] - sums[b] / counts[b]
        lines.append(f"  {axis}: {counts[a]} and {counts[b]} clips; RMS of the difference of their mean latent "
                     f"clips {float(d.pow(2).mean().sqrt()):.4f}")
    return lines


def mean_states(te, texts: list[str]):
    """The text encoder's states of each text averaged over its tokens (padding left out), [N, dim]:
    what the transformer's pooled summary reads."""
    states, mask = te.encode(texts)
    m = mask.float()[..., None]
    return (states * m).sum(1) / m.sum(1)


def probe_paths(pipe, specs: list, guidance: float | None) -> list[str]:
    """Generate every scene (seed i for scene i) with its token states saying one motion word and
    its pooled text summary saying the opposite one; per word, how many videos follow which."""
    import torch

    from kinema.world.analyze import analyze_video

    def summary(text: str):
        return mean_states(pipe.text_encoder, [text])[0]

    replacements: list = []

    def swap_summary(module, args):
        (pooled,) = args
        pooled = pooled.clone()
        for i in range(pooled.shape[0]):
            for said, wanted in replacements:
                if torch.allclose(pooled[i].float(), said, atol=1e-5):
                    pooled[i] = wanted.to(pooled.dtype)
                    break
        return (pooled,)

    size = f"{specs[0].width}x{specs[0].height}"
    seeds = list(range(len(specs)))
    hook = pipe.transformer.text_pool.register_forward_pre_hook(swap_summary)
    lines = []
    try:
        for a in DIRECTIONS:
            b = OPPOSITE[a]
            texts = [prompt(s, a) for s in specs]
            replacements[:] = [(summary(t), summary(prompt(s, b))) for t, s in zip(texts, specs)]
            videos = pipe.generate_batch(texts, seeds=seeds, guidance=guidance, size=size)
            reads = [read_motion(analyze_video(v)["objects"], s.objects[0].color)[0] for v, s in zip(videos, specs)]
            c = Counter("tokens" if r == a else "summary" if r == b else "neither" for r in reads)
            lines.append(f"  tokens '{a}', summary '{b}': {len(reads)} videos move as the tokens say in {c['tokens']}, "
                         f"as the summary says in {c['summary']}, neither in {c['neither']}")
    finally:
        hook.remove()
    return lines


def text_separation(n: int, seed: int = 0, text_encoder=None) -> list[str]:
    """Per axis: how far apart, and how linearly separable, the caption-averaged text states of
    its two motion words are (70% of the captions fit, 30% scored)."""
    from kinema.models.text import TextEncoder
    from kinema.world.captions import caption
    from kinema.world.sample import sample_spec

    te = text_encoder or TextEncoder.from_pretrained()
    rng = np.random.default_rng(seed)
    captions, motions = [], []
    while len(captions) < n:
        spec = sample_spec(rng, split="train", width=128, height=128, num_objects=1)
        if spec.objects[0].motion in OPPOSITE:
            captions.append(caption(spec, rng))
            motions.append(spec.objects[0].motion)
    pooled = []
    for i in range(0, n, 256):
        pooled.append(mean_states(te, captions[i:i + 256]).numpy())
    x, motions = np.concatenate(pooled), np.array(motions)
    lines = []
    for axis, (a, b) in AXES.items():
        pick = np.isin(motions, (a, b))
        xa, ya = x[pick], (motions[pick] == a).astype(int)
        fit = np.arange(len(ya)) < int(0.7 * len(ya))
        acc = {c: _logistic_accuracy(xa[fit], ya[fit], xa[~fit], ya[~fit], c) for c in (0.01, 1.0)}
        gap = float(np.linalg.norm(xa[ya == 1].mean(0) - xa[ya == 0].mean(0)))
        lines.append(f"  {axis:<10} {len(ya)} captions: mean states {gap:.3f} apart (per-dimension spread "
                     f"{float(xa.std(0).mean()):.3f}); linear probe on held-out captions {100 * acc[0.01]:.1f}% "
                     f"(C 0.01), {100 * acc[1.0]:.1f}% (C 1)")
    specs = scenes(max(8, min(n // 4, 200)), seed, 128, 128)
    for axis, (a, b) in AXES.items():
        between, within = word_token_separation(te, specs, a, b)
        lines.append(f"  {axis:<10} at the word, {len(specs)} scenes: the two words' mean states {between:.2f} apart, "
                     f"{within:.2f} spread within a word (ratio {between / max(within, 1e-9):.2f})")
    return lines


def word_uses(n: int, seed: int = 0) -> list[str]:
    """Per motion word, how often it occurs in N train-split captions of the world (any object
    count, relation phrases included) and how many of those uses are relation phrases
    ("left of", "right of"), not motions."""
    import re

    from kinema.world.captions import caption
    from kinema.world.sample import sample_spec

    rng = np.random.default_rng([seed, 17])
    uses, relation_uses = Counter(), Counter()
    for _ in range(n):
        spec = sample_spec(rng, split="train", width=128, height=128)
        text = caption(spec, rng).lower()
        for word in DIRECTIONS:
            uses[word] += len(re.findall(rf"\b{word}\b", text))
            relation_uses[word] += len(re.findall(rf"\b{word} of\b", text))
    return [f"  '{w}' {uses[w]} uses in {n} captions, {relation_uses[w]} of them relation phrases "
            f"({100 * relation_uses[w] / max(uses[w], 1):.1f}%)" for w in DIRECTIONS]


def word_token_separation(te, specs: list, a: str, b: str) -> tuple[float, float]:
    """(distance between the mean states of words a and b, the mean distance of a word's state
    from its own mean), at the word's token (the first whose id differs) in each scene's
    canonical prompt."""
    import torch

    texts_a, texts_b = [prompt(s, a) for s in specs], [prompt(s, b) for s in specs]
    states_a, _ = te.encode(texts_a)
    states_b, _ = te.encode(texts_b)
    ids_a, ids_b = (torch.as_tensor(te.tokenizer(t, padding="max_length", truncation=True,
                                                 max_length=te.max_length)["input_ids"]) for t in (texts_a, texts_b))
    at_a, at_b = [], []
    for i in range(len(specs)):
        k = int((ids_a[i] != ids_b[i]).nonzero()[0, 0])
        at_a.append(states_a[i, k].numpy())
        at_b.append(states_b[i, k].numpy())
    xa, xb = np.stack(at_a), np.stack(at_b)
    between = float(np.linalg.norm(xa.mean(0) - xb.mean(0)))
    within = float((np.linalg.norm(xa - xa.mean(0), axis=1).mean() + np.linalg.norm(xb - xb.mean(0), axis=1).mean()) / 2)
    return between, within


def _logistic_accuracy(x_fit, y_fit, x_test, y_test, c: float) -> float:
    """Accuracy on (x_test, y_test) of a logistic regression fitted with an L2 penalty of
    1 / (2c) per weight (c as in the usual C), by L-BFGS."""
    import torch

    xf, yf = torch.tensor(x_fit, dtype=torch.float64), torch.tensor(y_fit, dtype=torch.float64)
    w = torch.zeros(xf.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xf @ w + b, yf, reduction="sum")
        loss = loss + (w @ w) / (2 * c)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        pred = (torch.tensor(x_test, dtype=torch.float64) @ w + b) > 0
    return float((pred.numpy() == (y_test == 1)).mean())


def _with_motion_start(spec, motion: str) -> tuple[float, float]:
    """Where the world itself would start this scene's object with `motion` (placed again with
    the scene's seed), in fractions of the frame."""
    from dataclasses import replace

    from kinema.world.sample import place_objects

    moved = replace(spec, objects=[_with_motion(spec.objects[0], motion)])
    rng = np.random.default_rng([spec.seed, DIRECTIONS.index(motion)])
    for _ in range(100):
        if place_objects(moved, rng):
            return moved.objects[0].start
    raise RuntimeError(f"the world could not place {moved.objects[0]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="*", help="kinema eval run folders or samples files")
    ap.add_argument("--model", nargs="+", action="extend", default=[], metavar="NAME=PATH",
                    help="pipeline folders to probe (PATH 'shipped' for the shipped model)")
    ap.add_argument("--guidance", nargs="+", action="extend", default=[], metavar="NAME=G",
                    help="guidance scale for a model (default: the model's own)")
    ap.add_argument("--swapped", nargs="+", action="extend", default=[], metavar="NAME",
                    help="models trained on h/w-swapped latents (benchmarks/probe_train.py --swap-hw)")
    ap.add_argument("--rename-word", action="append", default=[], metavar="OLD=NEW",
                    help="prompts say NEW for the word OLD (benchmarks/probe_train.py --rename-word)")
    ap.add_argument("--paths", action="store_true",
                    help="also probe which way of reading the text (tokens or pooled summary) carries the word")
    ap.add_argument("--velocity", nargs="+", type=float, default=[], metavar="T",
                    help="also read each word's effect off one forward pass at these noise levels")
    ap.add_argument("--cache-means", metavar="DIR", default="",
                    help="also read what a latent cache of one-object clips offers each axis")
    ap.add_argument("--n", type=int, default=32, help="scenes per model (default 32; 4 words each)")
    ap.add_argument("--seed", type=int, default=0, help="which scenes (default 0)")
    ap.add_argument("--size", default="128x128")
    ap.add_argument("--text-probe", type=int, default=0, metavar="N",
                    help="also probe the text encoder alone on N captions (e.g. 3000)")
    args = ap.parse_args()
    if not args.runs and not args.model and not args.text_probe and not args.cache_means:
        sys.exit("motion_words: give eval runs, --model NAME=PATH, --text-probe N or --cache-means DIR")
    if args.paths and not args.model:
        sys.exit("motion_words: --paths probes models: give --model NAME=PATH")
    if args.velocity and not args.model:
        sys.exit("motion_words: --velocity probes models: give --model NAME=PATH")
    if any(not 0 < t <= 1 for t in args.velocity):
        sys.exit("motion_words: --velocity noise levels must be in (0, 1]")
    if args.text_probe and args.text_probe < 20:
        sys.exit("motion_words: --text-probe needs at least 20 captions")
    models, guidance = models_and_guidance("motion_words", args.model, args.guidance)
    if args.n < 1:
        sys.exit("motion_words: --n must be at least 1")
    RENAMES.update(renames_or_exit("motion_words", args.rename_word))
    unknown = sorted(set(args.swapped) - set(models))
    if unknown:
        sys.exit(f"motion_words: --swapped names {', '.join(unknown)}, which no --model has")

    from kinema.errors import KinemaError
    from kinema.eval.compare import read_samples

    for run in args.runs:
        try:
            records = read_samples(run)
        except (KinemaError, OSError) as exc:
            sys.exit(f"motion_words: {run}: {exc}")
        print(f"{run}: single-object prompts, motion read on the object of the asked colour")
        for axis, c in tally_samples(records).items():
            print(axis_line(axis, c))
    if args.text_probe:
        print(f"text encoder alone: {args.text_probe} single-object captions with a motion, states averaged")
        print("\n".join(text_separation(args.text_probe, args.seed)), flush=True)
        print(f"the words in {args.text_probe} train captions of any scene")
        print("\n".join(word_uses(args.text_probe, args.seed)), flush=True)
    if args.cache_means:
        try:
            lines = cache_means(args.cache_means)
        except (KinemaError, OSError) as exc:
            sys.exit(f"motion_words: --cache-means {args.cache_means}: {exc}")
        print(f"latent cache {args.cache_means}: the mean clip of each word's captions")
        print("\n".join(lines), flush=True)
    if not models:
        return
    width, height = size_or_exit("motion_words", args.size)
    specs = scenes(args.n, args.seed, width, height)
    for name, path in models.items():
        pipe = load_model("motion_words", name, path)
        swapped = name in args.swapped
        if swapped:
            run_swapped(pipe)
        g = guidance.get(name)
        print(f"{name} ({path}{', h/w swapped' if swapped else ''}, guidance {g if g is not None else 'default'}), "
              f"{len(specs)} scenes x 4 words "
              f"at {width}x{height}, seeds 0-{len(specs) - 1}", flush=True)
        if args.velocity:
            print(f"{name}: one forward pass per word, the same noisy clip", flush=True)
            print("\n".join(probe_velocity(pipe, specs, args.velocity)), flush=True)
        print("\n".join(probe_model(pipe, specs, g)), flush=True)
        if args.paths:
            print(f"{name}: token states against the pooled summary", flush=True)
            print("\n".join(probe_paths(pipe, specs, g)), flush=True)


if __name__ == "__main__":
    main()
