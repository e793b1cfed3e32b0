"""The transformer's grounding loss: the words that name an object attend to where it is.

The flow loss says what a clip looks like, but only weakly which words made which object: a
model can lower it a long way while drawing "a red circle left of a blue square" with the colours
or the sides swapped. Scenes of the world come with their specs, so for every caption we know
which object each size, colour and shape word names and which token cells that object covers.
The loss charges each such word's cross-attention, averaged over heads, for the share of it that
falls outside its object (1 - attention inside / attention overall), in every block; this is the
token loss of TokenCompose (Wang et al., CVPR 2024), on spacetime tokens.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..world.captions import NUMBER_WORDS, SIZE_WORDS, object_groups
from ..world.masks import object_coverage
from ..world.spec import SceneSpec

Span = tuple[int, int]


def phrase_spans(spec: SceneSpec, caption: str) -> list[tuple[list[int], list[Span]]]:
    """For each group of identical objects that `caption` names: (its object indices, the
    character spans of its size, colour and shape words). Groups are looked for in order, each
    after the last one found ("a large red circle left of a small red circle" names two groups);
    a group whose phrase is not there (a caption that is not the world's) is left out."""
    found, pos = [], 0
    articles = "|".join(sorted({*NUMBER_WORDS.values(), "an"}))
    for members in object_groups(spec):
        o = spec.objects[members[0]]
        sizes = "|".join(sorted(set(SIZE_WORDS[o.size])))
        plural = "s" if len(members) > 1 else ""
        pattern = rf"\b(?:{articles}) ({sizes}) ({re.escape(o.color)}) ({re.escape(o.shape)}{plural})\b"
        m = re.compile(pattern, re.IGNORECASE).search(caption, pos)
        if m is None:
            continue
        found.append((members, [m.span(1), m.span(2), m.span(3)]))
        pos = m.end()
    return found


def tokens_of(spans: Sequence[Span], offsets: Sequence[Span]) -> list[int]:
    """Indices of the tokens (character `offsets`, (0, 0) for special and padding tokens) that
    overlap any of `spans`."""
    return [j for j, (s, e) in enumerate(offsets) if e > s and any(s < b and e > a for a, b in spans)]


def token_frames(num_frames: int, token_times: int, temporal_factor: int, patch_t: int) -> list[int]:
    """The pixel frame each token time stands for: token time p covers latent frame p * patch_t,
    and a causal autoencoder's latent frame k > 0 ends at pixel frame temporal_factor * k."""
    return [min(temporal_factor * p * patch_t, num_frames - 1) for p in range(token_times)]


def grounding_targets(specs: Sequence[SceneSpec], captions: Sequence[str], offsets: Sequence[Sequence[Span]],
                      grid: tuple[int, int, int], temporal_factor: int, patch_t: int,
                      text_len: int) -> tuple[Tensor, Tensor]:
    """(targets float [B, text_len, t*h*w], weights float [B, text_len]) for a batch.

    Row j of a sample's targets is where the object(s) that token j names lie on the token grid
    `grid` = (t, h, w), flattened as the transformer flattens tokens: each cell's coverage over
    the most covered cell's, so attention all on the object's best cells costs nothing even when
    a small object fills a tenth of a cell. Weights are 1 for those tokens and 0 for the rest
    (and for every token of an empty, dropped caption).
    """
    t, h, w = grid
    targets = np.zeros((len(specs), text_len, t * h * w), dtype=np.float32)
    weights = np.zeros((len(specs), text_len), dtype=np.float32)
    for b, (spec, cap, offs) in enumerate(zip(specs, captions, offsets)):
        if not cap:
            continue
        frames = token_frames(spec.num_frames, t, temporal_factor, patch_t)
        cover = None
        for members, spans in phrase_spans(spec, cap):
            toks = tokens_of(spans, offs[:text_len])
            if not toks:
                continue
            if cover is None:
                cover = object_coverage(spec, frames, h, w).reshape(len(spec.objects), -1)
            where = cover[members].sum(0)
            if where.max() <= 0:  # the object lies outside the frame at these frames
                continue
            targets[b, toks] = where / where.max()
            weights[b, toks] = 1.0
    return torch.from_numpy(targets), torch.from_numpy(weights)


def grounding_loss(maps: Sequence[Tensor], targets: Tensor, weights: Tensor) -> Tensor:
    """Mean over blocks and weighted tokens of 1 - (attention inside the token's object) /
    (the token's attention overall). maps: per block, cross-attention probabilities
    [B, heads, N, L] (video tokens to text tokens); targets [B, L, N]; weights [B, L]."""
    if not maps:
        raise ValueError("grounding_loss needs the cross-attention maps of at least one block")
    targets, weights = targets.float(), weights.float()
    denom = weights.sum().clamp_min(1.0)
    total = maps[0].new_zeros((), dtype=torch.float32)
    for probs in maps:
        a = probs.float().mean(1)  # [B, N, L]
        mass = a.sum(1)  # [B, L]
        inside = torch.einsum("bnl,bln->bl", a, targets)
        total = total + ((1.0 - inside / mass.clamp_min(1e-8)) * weights).sum() / denom
    return total / len(maps)
