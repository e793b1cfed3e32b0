"""A latent cache for the transformer stage: encode batches with the frozen VAE once, to
safetensors shards, then train from the shards.

    CACHE/manifest.json                what was encoded (source, buckets, VAE fingerprint, ...)
    CACHE/building.json                while a build is under way: what it is building
    CACHE/shard_r<R>_<K>.safetensors   entries "e<N>" = latents [B, C, t, h, w]; captions (and, for
                                       the world, scene specs) in metadata

Entry n is built by process n % W (W = processes at build time) from item n // W of its data
stream, so the cache is the same for any W and training reads it in a seeded order that does
not depend on the number of processes either. A run's own cache (OUT/latent_cache) whose manifest
does not match the run is rebuilt; a complete cache in a folder named by `data.latent_cache_dir`,
which other runs may share, is never overwritten: a mismatch is an error naming what differs.
An interrupted build resumes: the shards it finished are kept when the next build is for the same
settings and the same number of processes, and only the rest is encoded.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import KinemaError
from ..files import atomic_write

MANIFEST = "manifest.json"
BUILDING = "building.json"
ENTRIES_PER_SHARD = 64


def fingerprint_module(module: torch.nn.Module) -> str:
    """A short hash of a module's weights (and buffers)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def read_manifest(root: Path) -> dict | None:
    try:
        return json.loads((Path(root) / MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def difference(root: Path, key: dict) -> str | None:
    """How the cache in `root` differs from one built for `key`: None when `root` holds no complete
    cache (a missing shard means an interrupted build), "" when it was built for `key`, else each
    difference (e.g. "seed 0 there, 16 wanted")."""
    m = read_manifest(root)
    if m is None or not all((Path(root) / s).is_file() for s in m.get("shards", [])):
        return None
    built = m.get("key", {})
    return "; ".join(f"{k} {built.get(k)!r} there, {key.get(k)!r} wanted"
                     for k in sorted(set(built) | set(key)) if built.get(k) != key.get(k))


def _write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1), encoding="utf-8"))


def start_build(root: Path, key: dict, world_size: int) -> int:
    """(main process) Make `root` ready to build the cache for `key` with `world_size` processes.
    When it holds an interrupted build of exactly that, its finished shards stay for
    `build_shards` to keep, and the number of entries in them is returned; otherwise everything
    of an earlier cache is removed and 0 returned."""
    root = Path(root)
    wanted = json.loads(json.dumps({"key": key, "world_size": world_size}))  # as it reads back
    try:
        building = json.loads((root / BUILDING).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        building = None
    if building == wanted and read_manifest(root) is None:
        return sum(len(entries) for rank in range(world_size)
                   for entries in finished_shards(root, rank).values())
    clear(root)
    _write_json(root / BUILDING, wanted)
    return 0


def finished_shards(root: Path, rank: int) -> dict[str, list[int]]:
    """This process's shards already in `root` (an interrupted build's), with their entries."""
    found: dict[str, list[int]] = {}
    for path in sorted(Path(root).glob(f"shard_r{rank}_*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            found[path.name] = sorted(int(k[1:]) for k in f.keys())
    return found


def build_shards(root: Path, rank: int, world_size: int, count: int,
                 items: Iterable[dict], encode: Callable[[torch.Tensor], torch.Tensor],
                 progress: Callable[[int], None] | None = None) -> list[str]:
    """(each process) Encode this process's entries rank, rank+W, ... < count into shards. Entries
    in shards an interrupted build left (`start_build` kept them) are not encoded again; their
    items are still drawn from `items`, so the later ones line up."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    mine = list(range(rank, count, world_size))
    kept = finished_shards(root, rank)
    done = {n for entries in kept.values() for n in entries}
    shards: list[str] = list(kept)
    buf: dict[str, torch.Tensor] = {}
    captions: dict[str, list[str]] = {}
    specs: dict[str, list[dict]] = {}

    def flush() -> None:
        if not buf:
            return
        name = f"shard_r{rank}_{len(shards):05d}.safetensors"
        tmp = root / f".{name}.tmp"
        metadata = {"captions": json.dumps(captions)}
        if specs:
            metadata["specs"] = json.dumps(specs)
        save_file(buf, str(tmp), metadata=metadata)
        os.replace(tmp, root / name)
        shards.append(name)
        buf.clear()
        captions.clear()
        specs.clear()

    it = iter(items)
    for n in mine:
        batch = next(it)
        if n in done:
            if progress:
                progress(1)
            continue
        latents = encode(batch["video"])
        buf[f"e{n}"] = latents.detach().to("cpu", torch.float32).contiguous()
        captions[f"e{n}"] = list(batch["caption"])
        if "spec" in batch:
            specs[f"e{n}"] = list(batch["spec"])
        if progress:
            progress(1)
        if len(buf) >= ENTRIES_PER_SHARD:
            flush()
    flush()
    return shards


def write_manifest(root: Path, key: dict, shards: list[str], count: int) -> None:
    root = Path(root)
    _write_json(root / MANIFEST, {"key": key, "count": count, "shards": sorted(shards)})
    (root / BUILDING).unlink(missing_ok=True)


def clear(root: Path) -> None:
    """Remove the cache's own files (manifest, build record, shards, their temporary files), nothing
    else."""
    root = Path(root)
    if not root.is_dir():
        return
    # the JSON files' temporary names (atomic_write) start with their stem and a dot too
    own = (Path(MANIFEST).stem + ".", Path(BUILDING).stem + ".", "shard_r")
    for f in root.iterdir():
        name = f.name.lstrip(".")
        if f.is_file() and name.startswith(own):
            f.unlink()


class LatentCache:
    """Random access to a built cache; `batch(rank, world_size, consumed)` is the training order."""

    def __init__(self, root: str | os.PathLike, seed: int = 0):
        self.root = Path(root)
        manifest = read_manifest(self.root)
        if manifest is None:
            raise KinemaError(f"{self.root}: not a latent cache (no {MANIFEST})")
        self.count = int(manifest["count"])
        self.seed = seed
        self._where: dict[int, str] = {}
        self._captions: dict[int, list[str]] = {}
        self._specs: dict[int, list[dict]] = {}
        for shard in manifest["shards"]:
            with safe_open(str(self.root / shard), framework="pt") as f:
                meta = f.metadata() or {}
                caps = json.loads(meta.get("captions", "{}"))
                specs = json.loads(meta.get("specs", "{}"))
                for key in f.keys():
                    n = int(key[1:])
                    self._where[n] = shard
                    self._captions[n] = caps.get(key, [""])
                    if key in specs:
                        self._specs[n] = specs[key]
        missing = [n for n in range(self.count) if n not in self._where]
        if missing:
            raise KinemaError(f"{self.root}: latent cache is incomplete (entry {missing[0]} missing); delete it to rebuild")
        self._perm_epoch = -1
        self._perm: np.ndarray | None = None

    def __len__(self) -> int:
        return self.count

    def entry(self, n: int) -> dict:
        with safe_open(str(self.root / self._where[n]), framework="pt") as f:
            latents = f.get_tensor(f"e{n}")
        item = {"latents": latents, "caption": list(self._captions[n])}
        if n in self._specs:
            item["spec"] = list(self._specs[n])
        return item

    def order(self, position: int) -> int:
        """The entry at global position `position` of the seeded, per-epoch shuffled order."""
        epoch, offset = divmod(position, self.count)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, 7919, epoch]).permutation(self.count)
            self._perm_epoch = epoch
        return int(self._perm[offset])

    def batch(self, rank: int, world_size: int, consumed: int) -> dict:
        """The batch of process `rank` after it consumed `consumed` batches."""
        return self.entry(self.order(consumed * world_size + rank))
