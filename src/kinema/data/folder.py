"""A folder of the user's captioned clips: `captions.jsonl` beside the files.

Each line of `captions.jsonl` is `{"path": "clip.mp4", "caption": "..."}` with `path` relative to
the folder (MP4/MOV/WebM/GIF, an image, or a folder of frames). The whole index is checked when
the dataset is made, so a bad line or an unreadable clip stops training at start-up with a
message naming it, not hours later.

Batches follow the buckets (data/buckets.py): a batch draws one clip, one of the buckets that
clip fits best (nearest aspect ratio among those it has enough frames for), then the rest of the
batch from the clips that share that bucket. Clips are brought to the bucket's frame rate by
taking every k-th frame, scaled to cover the bucket, centre-cropped and cut to its 1+4k frames
at a random start. Item `index` of a rank is a pure function of (seed, rank, index), so a run
resumes exactly and any number of DataLoader workers yields the same sequence.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..errors import KinemaError
from .buckets import Bucket, home_buckets, parse_buckets, resize_crop

INDEX_NAME = "captions.jsonl"
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


@dataclass
class ClipInfo:
    path: Path
    caption: str
    line: int
    width: int
    height: int
    frames: int  # after bringing the clip to the training frame rate
    stride: int
    homes: list[int]


def read_index(root: str | os.PathLike) -> list[tuple[int, Path, str]]:
    """(line number, absolute path, caption) for each line of ROOT/captions.jsonl."""
    root = Path(root)
    index = root / INDEX_NAME
    if not root.is_dir():
        raise KinemaError(f"{root}: no such folder (a training folder holds {INDEX_NAME} and the clips it names)")
    if not index.is_file():
        raise KinemaError(f"{index}: no such file; a training folder needs {INDEX_NAME} with lines "
                          '{"path": "clip.mp4", "caption": "..."}')
    entries = []
    with open(index, encoding="utf-8") as f:
        for n, raw in enumerate(f, start=1):
            text = raw.strip()
            if not text:
                continue
            where = f"{index}: line {n}"
            try:
                item = json.loads(text)
            except json.JSONDecodeError as exc:
                raise KinemaError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(item, dict):
                raise KinemaError(f'{where}: expected an object {{"path": ..., "caption": ...}}')
            path, cap = item.get("path"), item.get("caption")
            if not isinstance(path, str) or not path:
                raise KinemaError(f'{where}: "path" must be a non-empty string')
            if not isinstance(cap, str):
                raise KinemaError(f'{where}: "caption" must be a string')
            full = (root / path)
            if not full.exists():
                raise KinemaError(f"{where}: clip {path!r} not found in {root}")
            entries.append((n, full, cap))
    if not entries:
        raise KinemaError(f"{index}: holds no clips")
    return entries


def probe(path: Path) -> tuple[int, int, int, float]:
    """(width, height, frames, fps) of a clip, decoding as little as needed; KinemaError if unreadable."""
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in _IMAGE_SUFFIXES or suffix == ".gif":
        from ..video import Video

        v = Video.read(path)
        return v.width, v.height, v.num_frames, v.fps
    if path.stat().st_size == 0:
        raise KinemaError(f"{path}: file is empty")
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise KinemaError(f"{path}: holds no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 12)
            listed = int(stream.frames or 0)  # from the container's index; 0 when unknown
            frames = 0
            width = height = 0
            for frame in container.decode(stream):
                if frames == 0:
                    width, height = frame.width, frame.height
                frames += 1
                if listed and frames >= 1:
                    frames = listed  # the first frame decoded: readable; trust the index for the count
                    break
            meta = container.metadata.get("kinema")
    except KinemaError:
        raise
    except Exception as exc:  # PyAV raises its own error family for unreadable files
        raise KinemaError(f"{path}: not a readable video ({type(exc).__name__}: {exc})") from None
    if frames == 0:
        raise KinemaError(f"{path}: video has no frames")
    if meta:  # Video.save pads odd sizes and records the true one
        try:
            d = json.loads(meta)
            width, height = int(d.get("width", width)), int(d.get("height", height))
        except (ValueError, TypeError, AttributeError):
            pass
    return width, height, frames, fps


class FolderStream(IterableDataset):
    """Yields {"video": float [B, 3, T, H, W] in [-1, 1], "caption": [str]*B} batches, one bucket each."""

    def __init__(self, root: str | os.PathLike, buckets: Sequence, batch_size: int = 1, fps: float = 12.0,
                 seed: int = 0, rank: int = 0, start_index: int = 0, cache_clips: int = 32):
        super().__init__()
        self.root = Path(root)
        self.buckets: list[Bucket] = parse_buckets(buckets)
        self.batch_size, self.fps, self.seed, self.rank = batch_size, fps, seed, rank
        self.start_index = start_index
        self.cache_clips = cache_clips
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self.clips: list[ClipInfo] = []
        shortest = min(b.frames for b in self.buckets)
        for line, path, cap in read_index(self.root):
            w, h, n, clip_fps = probe(path)
            stride = max(1, round(clip_fps / fps)) if n > 1 else 1
            frames = (n + stride - 1) // stride
            homes = home_buckets(self.buckets, w, h, frames)
            if not homes:
                raise KinemaError(f"{path}: {frames} frames at {fps:g} fps, fewer than every bucket's "
                                  f"(the shortest takes {shortest}); add a shorter bucket or drop the clip "
                                  f"(captions.jsonl line {line})")
            self.clips.append(ClipInfo(path, cap, line, w, h, frames, stride, homes))
        self._by_bucket: dict[int, list[int]] = {}
        for ci, clip in enumerate(self.clips):
            for b in clip.homes:
                self._by_bucket.setdefault(b, []).append(ci)

    def __len__(self) -> int:  # number of clips, for messages
        return len(self.clips)

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        index = self.start_index + worker
        while True:
            yield self.item(index)
            index += num_workers

    def item(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.rank, index])
        anchor = int(rng.integers(len(self.clips)))
        homes = self.clips[anchor].homes
        b = homes[int(rng.integers(len(homes)))]
        bucket = self.buckets[b]
        batch_size = bucket.batch_size or self.batch_size
        pool = self._by_bucket[b]
        chosen = [anchor] + [pool[int(rng.integers(len(pool)))] for _ in range(batch_size - 1)]
        videos = [self._fit(ci, bucket, rng) for ci in chosen]
        return {"video": torch.stack(videos), "caption": [self.clips[ci].caption for ci in chosen]}

    def _load(self, ci: int) -> torch.Tensor:
        if ci in self._cache:
            self._cache.move_to_end(ci)
            return self._cache[ci]
        from ..video import Video

        clip = self.clips[ci]
        try:
            video = Video.read(clip.path)
        except KinemaError as exc:
            raise KinemaError(f"captions.jsonl line {clip.line}: {exc}") from None
        frames = torch.from_numpy(video.frames[::clip.stride].copy())  # uint8 [T, H, W, 3]
        if self.cache_clips > 0:
            self._cache[ci] = frames
            while len(self._cache) > self.cache_clips:
                self._cache.popitem(last=False)
        return frames

    def _fit(self, ci: int, bucket: Bucket, rng: np.random.Generator) -> torch.Tensor:
        frames = self._load(ci)
        n = frames.shape[0]
        start = int(rng.integers(n - bucket.frames + 1)) if n > bucket.frames else 0
        frames = frames[start:start + bucket.frames]
        if frames.shape[0] < bucket.frames:  # a container that listed more frames than it holds
            frames = torch.cat([frames, frames[-1:].expand(bucket.frames - frames.shape[0], *frames.shape[1:])])
        clip = frames.permute(3, 0, 1, 2).float() / 127.5 - 1.0
        return resize_crop(clip, bucket.width, bucket.height)
