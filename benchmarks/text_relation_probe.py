"""Can the transformer read, from the text encoder's states, which side of the frame a colour goes to?

In "a red star above a green square" the red object belongs at the top and the green one at the
bottom: which side a colour goes to depends on the relation word and on whether the colour names
the subject or the object. The transformer sees the text only through its token states. This
captions world scenes of two objects in a clear relation (train split, random phrasings), takes
the encoder's state at each object's colour word, and trains two classifiers to name that
object's side (left, right, up, down): a linear one, and an MLP like the transformer's own text
projection (one hidden layer; `latent_shape_probe.py`'s classifier). They are scored on captions
they never saw. "Axis" counts a side on the right axis (left/right against up/down); given the
axis, what is left is the colour's role, subject or object.

    python benchmarks/text_relation_probe.py [--captions 6000] [--text-encoder DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import latent_shape_probe  # noqa: E402  (a sibling script: its classifier)

SIDES = ("left", "right", "up", "down")
SIDE_OF = {"left of": ("left", "right"), "right of": ("right", "left"),
           "above": ("up", "down"), "below": ("down", "up")}


def relation_captions(n: int, seed: int = 0) -> list[tuple[str, tuple[str, str], tuple[str, str]]]:
    """(caption, the two objects' colours, their sides) for `n` train-split scenes of two objects
    of different colours (neither the background's) in a clear relation."""
    from kinema.world.captions import caption, group_objects, relation_between
    from kinema.world.sample import sample_spec

    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        spec = sample_spec(rng, "train", num_objects=2)
        a, b = spec.objects
        if len(group_objects(spec)) != 2 or a.color == b.color or spec.background in (a.color, b.color):
            continue
        rel = relation_between(spec, 0, 1)
        if rel is None:
            continue
        out.append((caption(spec, rng), (a.color, b.color), SIDE_OF[rel]))
    return out


def colour_token_states(encoder, rows, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The encoder's state at each object's colour word (a word that is one token, once in the
    caption), the object's side as an index into SIDES, and the caption's index in `rows`."""
    xs, ys, which = [], [], []
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        texts = [text for text, _, _ in chunk]
        states, _ = encoder.encode(texts)
        ids = encoder.tokenizer(texts, padding="max_length", truncation=True, max_length=encoder.max_length,
                                return_tensors="pt")["input_ids"]
        for i, (_, colours, sides) in enumerate(chunk):
            row = ids[i].tolist()
            for colour, side in zip(colours, sides):
                token = _token_id(encoder.tokenizer, colour)
                where = [p for p, t in enumerate(row) if t == token]
                if token is not None and len(where) == 1:
                    xs.append(states[i, where[0]])
                    ys.append(SIDES.index(side))
                    which.append(start + i)
    return torch.stack(xs), torch.tensor(ys), torch.tensor(which)


def _token_id(tokenizer, word: str) -> int | None:
    if hasattr(tokenizer, "tok"):  # kinema's own fast BERT tokenizer
        return tokenizer.tok.token_to_id(word)
    return tokenizer.convert_tokens_to_ids(word)


def probe(x_train, y_train, x_test, y_test, hidden: int = 0) -> dict:
    """Accuracy on the test rows of a linear (hidden 0) or one-hidden-layer classifier (the latent
    shape probe's), and of its axis (left/right against up/down)."""
    predict = latent_shape_probe.train_probe(x_train, y_train, len(SIDES), hidden=hidden)
    with torch.no_grad():
        pred = predict(x_test)
    return {"side": (pred == y_test).float().mean().item(),
            "axis": ((pred // 2) == (y_test // 2)).float().mean().item()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--captions", type=int, default=6000)
    ap.add_argument("--text-encoder", default=None, help="local encoder folder (default: the packaged MiniLM)")
    ap.add_argument("--hidden", type=int, default=256, help="the MLP's hidden width (the transformer's: 256)")
    args = ap.parse_args()
    from kinema.models.text import TextEncoder

    encoder = TextEncoder.from_pretrained(args.text_encoder, max_length=32)
    rows = relation_captions(args.captions)
    x, y, which = colour_token_states(encoder, rows)
    cut = int((which < int(0.8 * len(rows))).sum())  # the first 80% of the captions, both colours of each
    print(f"{len(rows)} captions, {len(y)} colour words ({cut} to train on, {len(y) - cut} to test); "
          f"sides {dict(zip(SIDES, torch.bincount(y, minlength=4).tolist()))}; e.g. {rows[0][0]!r}")
    for hidden in (0, args.hidden):
        r = probe(x[:cut], y[:cut], x[cut:], y[cut:], hidden)
        name = "linear" if hidden == 0 else f"MLP ({hidden} hidden)"
        print(f"{name}: side right {100 * r['side']:.1f}% (chance 25%), axis right {100 * r['axis']:.1f}% "
              f"(chance 50%), role right given the axis {100 * r['side'] / max(r['axis'], 1e-9):.1f}% (chance 50%)")


if __name__ == "__main__":
    main()
