"""An interrupted latent cache build resumes: finished shards are kept, only the rest is encoded,
and every entry still holds the latents of its own batch."""

from __future__ import annotations

import pytest
import torch

from kinema.data import latent_cache as lc

KEY = {"source": "world", "buckets": [[32, 32, 5]], "seed": 0, "batches": 7}


def _items(stop_after: int | None = None):
    for n in range(100):
        if stop_after is not None and n == stop_after:
            raise RuntimeError("interrupted")
        yield {"video": torch.full((1, 3, 5, 8, 8), float(n)), "caption": [f"caption {n}"]}


def test_an_interrupted_build_keeps_its_shards_and_encodes_only_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(lc, "ENTRIES_PER_SHARD", 2)
    encoded: list[float] = []

    def encode(video: torch.Tensor) -> torch.Tensor:
        encoded.append(float(video.flatten()[0]))
        return video[:, :1, :2] * 10.0

    root = tmp_path / "cache"
    assert lc.start_build(root, KEY, world_size=1) == 0
    with pytest.raises(RuntimeError, match="interrupted"):
        lc.build_shards(root, 0, 1, 7, _items(stop_after=5), encode)
    assert encoded == [0, 1, 2, 3, 4]  # entry 4 was encoded but its shard never written
    assert lc.finished_shards(root, 0) == {"shard_r0_00000.safetensors": [0, 1],
                                           "shard_r0_00001.safetensors": [2, 3]}
    assert lc.read_manifest(root) is None

    encoded.clear()
    assert lc.start_build(root, KEY, world_size=1) == 4  # entries 0-3 kept
    shards = lc.build_shards(root, 0, 1, 7, _items(), encode)
    assert encoded == [4, 5, 6]
    lc.write_manifest(root, KEY, shards, 7)
    assert not (root / lc.BUILDING).exists() and lc.difference(root, KEY) == ""
    cache = lc.LatentCache(root)
    for n in range(7):
        entry = cache.entry(n)
        assert entry["caption"] == [f"caption {n}"]
        assert torch.equal(entry["latents"], torch.full((1, 1, 2, 8, 8), 10.0 * n))


def test_a_build_for_other_settings_or_processes_starts_over(tmp_path, monkeypatch):
    monkeypatch.setattr(lc, "ENTRIES_PER_SHARD", 2)
    root = tmp_path / "cache"
    lc.start_build(root, KEY, world_size=1)
    with pytest.raises(RuntimeError):
        lc.build_shards(root, 0, 1, 7, _items(stop_after=3), lambda v: v)
    assert lc.finished_shards(root, 0)
    assert lc.start_build(root, dict(KEY, seed=1), world_size=1) == 0
    assert lc.finished_shards(root, 0) == {}
    with pytest.raises(RuntimeError):
        lc.build_shards(root, 0, 1, 7, _items(stop_after=3), lambda v: v)
    assert lc.start_build(root, dict(KEY, seed=1), world_size=2) == 0  # entries split another way
    assert lc.finished_shards(root, 0) == {}


def test_a_complete_cache_is_not_taken_for_an_interrupted_build(tmp_path):
    root = tmp_path / "cache"
    lc.start_build(root, KEY, world_size=1)
    shards = lc.build_shards(root, 0, 1, 7, _items(), lambda v: v)
    lc.write_manifest(root, KEY, shards, 7)
    # a leftover build record next to a finished manifest must not keep the old shards
    lc._write_json(root / lc.BUILDING, {"key": KEY, "world_size": 1})
    assert lc.start_build(root, KEY, world_size=1) == 0
    assert lc.read_manifest(root) is None and lc.finished_shards(root, 0) == {}
