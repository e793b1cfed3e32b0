"""An endless stream of (video, caption) pairs from the procedural world, for training."""

from __future__ import annotations

import copy
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..world.captions import caption
from ..world.mirror import has_heldout_object, mirror_spec
from ..world.render import render
from ..world.sample import check_group_probability, check_weights_scope, sample_spec
from ..world.spec import SceneSpec, SpecError


def scene_and_window_start(item_spec: dict) -> tuple[SceneSpec, int]:
    """A stream item's spec dict -> (its scene, the scene frame the clip starts at): 0 for a whole
    scene, "window_start" for a window of a longer one (`WorldStream(window_of_frames=...)`)."""
    d = dict(item_spec)
    start = int(d.pop("window_start", 0))
    return SceneSpec.from_dict(d), start


class WorldStream(IterableDataset):
    """Yields {"video": float [3, T, H, W] in [-1, 1], "caption": str, "spec": dict}.

    Each (rank, worker) pair draws from its own stream seeded by (seed, rank, worker), so
    no two workers or processes repeat each other and a run is reproducible. `buckets` is a
    list of (width, height, num_frames); a sample's bucket is drawn at random (batches of one
    bucket are formed by the caller, e.g. with batch_size=None and `batch_size` here).
    A bucket may carry a fourth number, its own batch size (e.g. more images than clips).

    With `interleave_workers=True` (what the trainer uses) item `index` of a rank is drawn from
    its own stream seeded by (seed, rank, index) and DataLoader worker w makes items w, w+n,
    w+2n, ...: the sequence a rank sees is then the same for any number of workers, and
    `start_index` = the number of items already consumed resumes it exactly.

    With `mirror_pairs=True` (train split only) the second half of every batch is the first half
    seen in a mirror (`kinema.world.mirror`): the same frames flipped left to right, captioned in
    the same phrasing with "left" and "right" swapped. A scene whose mirror would show a held-out
    combination (e.g. a circle moving left) is drawn again, so the split stays clean.

    With `window_of_frames=N`, a clip of T < N frames is T consecutive frames, at a random offset, of
    a scene drawn for N frames: its objects move at the speed they have in an N-frame clip (a 9-frame
    scene of its own crosses the same 35-50% of the frame in 9 frames, ~2.7x faster than in the
    default 24-frame clip). The item's spec is the N-frame scene's, with "window_start" added; its
    caption is that scene's. For the autoencoder, which reads frames only.
    """

    def __init__(self, split: str = "train", seed: int = 0, buckets: Sequence[tuple[int, ...]] = ((128, 128, 25),),
                 fps: float = 12.0, batch_size: int = 1, rank: int = 0, world_size: int = 1, max_objects: int = 3,
                 start_index: int = 0, interleave_workers: bool = False, uint8: bool = False,
                 count_weights: Sequence[float] | None = None, size_weights: Sequence[float] | None = None,
                 relation_captions: bool = True, mirror_pairs: bool = False, group_probability: float = 0.0,
                 shape_weights: Sequence[float] | None = None, window_of_frames: int | None = None,
                 weights_scope: str = "all"):
        super().__init__()
        if mirror_pairs and split != "train":
            raise ValueError("mirror_pairs: only the train split can be mirrored (a held-out scene's mirror "
                             "may hold no held-out combination)")
        sizes = [b[3] if len(b) > 3 else batch_size for b in buckets]
        if mirror_pairs and any(n % 2 for n in sizes):
            raise ValueError(f"mirror_pairs: every batch size must be even (a scene and its mirror), got {sizes}")
        self.split, self.seed, self.buckets, self.fps = split, seed, [tuple(b) for b in buckets], fps
        self.batch_size, self.rank, self.world_size, self.max_objects = batch_size, rank, world_size, max_objects
        self.start_index = start_index
        self.interleave_workers = interleave_workers
        self.uint8 = uint8  # yield uint8 [3, T, H, W] frames instead of float (cheaper between processes)
        self.count_weights = list(count_weights) if count_weights else None  # None: the world's default mix
        self.size_weights = list(size_weights) if size_weights else None  # None: small and large evenly
        self.shape_weights = list(shape_weights) if shape_weights else None  # None: every shape evenly
        self.group_probability = check_group_probability(group_probability)  # scenes of one identical group
        self.weights_scope = check_weights_scope(weights_scope)  # "distinct": weights skip single objects and groups
        self.relation_captions = relation_captions  # False: two objects are described each by itself
        self.mirror_pairs = mirror_pairs
        if window_of_frames is not None and (not isinstance(window_of_frames, int) or window_of_frames < 2):
            raise ValueError(f"window_of_frames: must be an integer of at least 2 frames, got {window_of_frames!r}")
        if window_of_frames is not None and mirror_pairs:
            raise ValueError("window_of_frames: is for the autoencoder, mirror_pairs for the transformer; "
                             "a window's caption may name a relation its frames do not show")
        self.window_of_frames = window_of_frames

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if self.interleave_workers:
            index = self.start_index + worker
            while True:
                yield self.item(index)
                index += num_workers
        index = self.start_index
        while True:
            rng = np.random.default_rng([self.seed, self.rank, worker, num_workers, index])
            index += 1
            yield self._draw(rng)

    def item(self, index: int) -> dict:
        """Item `index` of this rank's interleaved stream (see the class note)."""
        return self._draw(np.random.default_rng([self.seed, self.rank, index]))

    def _draw(self, rng: np.random.Generator) -> dict:
        bucket = self.buckets[int(rng.integers(len(self.buckets)))]
        w, h, t = bucket[:3]
        batch_size = bucket[3] if len(bucket) > 3 else self.batch_size
        # channel-first [B, 3, T, H, W]; numpy's transposing copy is ~10x faster than torch's for uint8
        videos = np.empty((batch_size, 3, t, h, w), dtype=np.uint8)
        scenes = batch_size // 2 if self.mirror_pairs else batch_size
        captions, specs, mirror_captions, mirror_specs = [], [], [], []
        window = self.window_of_frames if self.window_of_frames and 1 < t < self.window_of_frames else None
        for i in range(scenes):
            spec, mirrored = self._scene(rng, w, h, window or t)
            frames = render(spec)
            if window:
                start = int(rng.integers(window - t + 1))
                frames = frames[start:start + t]
            videos[i] = frames.transpose(3, 0, 1, 2)
            if mirrored is not None:  # captioned from a copy of the generator: the same phrasing
                videos[scenes + i] = videos[i, :, :, :, ::-1]
                mirror_captions.append(caption(mirrored, copy.deepcopy(rng), with_relation=self.relation_captions))
                mirror_specs.append(mirrored.to_dict())
            captions.append(caption(spec, rng, with_relation=self.relation_captions))
            specs.append({**spec.to_dict(), "window_start": start} if window else spec.to_dict())
        captions += mirror_captions  # the originals first, then their mirrors in the same order
        specs += mirror_specs
        video = torch.from_numpy(videos)
        if not self.uint8:
            video = video.float() / 127.5 - 1.0
        if batch_size == 1 and len(bucket) == 3:
            return {"video": video[0], "caption": captions[0], "spec": specs[0]}
        return {"video": video, "caption": captions, "spec": specs}

    def _scene(self, rng: np.random.Generator, w: int, h: int, t: int) -> tuple[SceneSpec, SceneSpec | None]:
        """A scene and, with mirror pairs, its mirror (else None)."""
        for _ in range(100):
            spec = sample_spec(rng, split=self.split, width=w, height=h, fps=self.fps, num_frames=t,
                               max_objects=self.max_objects, count_weights=self.count_weights,
                               size_weights=self.size_weights, group_probability=self.group_probability,
                               shape_weights=self.shape_weights, weights_scope=self.weights_scope)
            if not self.mirror_pairs:
                return spec, None
            mirrored = mirror_spec(spec)
            if not has_heldout_object(mirrored):
                return spec, mirrored
        raise SpecError("mirror_pairs: found no scene whose mirror keeps to the train split in 100 draws")
