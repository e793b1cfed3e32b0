"""An endless stream of (video, caption) pairs from the procedural world, for training."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..world.captions import caption
from ..world.render import render
from ..world.sample import sample_spec


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
    """

    def __init__(self, split: str = "train", seed: int = 0, buckets: Sequence[tuple[int, ...]] = ((128, 128, 25),),
                 fps: float = 12.0, batch_size: int = 1, rank: int = 0, world_size: int = 1, max_objects: int = 3,
                 start_index: int = 0, interleave_workers: bool = False, uint8: bool = False,
                 count_weights: Sequence[float] | None = None, size_weights: Sequence[float] | None = None,
                 relation_captions: bool = True):
        super().__init__()
        self.split, self.seed, self.buckets, self.fps = split, seed, [tuple(b) for b in buckets], fps
        self.batch_size, self.rank, self.world_size, self.max_objects = batch_size, rank, world_size, max_objects
        self.start_index = start_index
        self.interleave_workers = interleave_workers
        self.uint8 = uint8  # yield uint8 [3, T, H, W] frames instead of float (cheaper between processes)
        self.count_weights = list(count_weights) if count_weights else None  # None: the world's default mix
        self.size_weights = list(size_weights) if size_weights else None  # None: small and large evenly
        self.relation_captions = relation_captions  # False: two objects are described each by itself

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
        captions, specs = [], []
        for i in range(batch_size):
            spec = sample_spec(rng, split=self.split, width=w, height=h, fps=self.fps, num_frames=t,
                               max_objects=self.max_objects, count_weights=self.count_weights,
                               size_weights=self.size_weights)
            videos[i] = render(spec).transpose(3, 0, 1, 2)
            captions.append(caption(spec, rng, with_relation=self.relation_captions))
            specs.append(spec.to_dict())
        video = torch.from_numpy(videos)
        if not self.uint8:
            video = video.float() / 127.5 - 1.0
        if batch_size == 1 and len(bucket) == 3:
            return {"video": video[0], "caption": captions[0], "spec": specs[0]}
        return {"video": video, "caption": captions, "spec": specs}
