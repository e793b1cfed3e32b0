"""The folder dataset: captions.jsonl + clips, checked at start-up, batched by bucket."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kinema import Video
from kinema.cli import main
from kinema.data.buckets import Bucket, home_buckets, largest_valid_frames, parse_buckets, resize_crop
from kinema.data.folder import FolderStream
from kinema.errors import KinemaError

BUCKETS = [[32, 32, 5], [48, 32, 5], [32, 32, 1, 3]]


def _clip(w: int, h: int, t: int, seed: int) -> Video:
    rng = np.random.default_rng(seed)
    frames = np.zeros((t, h, w, 3), dtype=np.uint8)
    frames[:] = rng.integers(0, 255, size=3, dtype=np.uint8)
    for i in range(t):  # a moving square
        x = 2 + 2 * i
        frames[i, 8:16, x:x + 8] = (220, 40, 40)
    return Video(frames, fps=12)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    _clip(48, 32, 9, 0).save(root / "wide.mp4")
    (root / "sub").mkdir()
    _clip(32, 32, 6, 1).save(root / "sub" / "square.mp4")
    lines = [{"path": "wide.mp4", "caption": "a red square moves right"},
             {"path": "sub/square.mp4", "caption": "a red square on a grey background"}]
    (root / "captions.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    return root


def _write(root, lines):
    (root / "captions.jsonl").write_text("\n".join(lines) + "\n")


def test_stream_batches_fit_buckets_and_are_reproducible(folder):
    ds = FolderStream(folder, BUCKETS, batch_size=2, seed=3)
    assert len(ds) == 2
    # a clip's homes: the buckets of the nearest aspect ratio it has frames enough for
    assert [ds.buckets[i].as_tuple()[:3] for i in ds.clips[0].homes] == [(48, 32, 5)]
    assert [ds.buckets[i].as_tuple()[:3] for i in ds.clips[1].homes] == [(32, 32, 5), (32, 32, 1)]
    seen = set()
    for i in range(8):
        b = ds.item(i)
        v = b["video"]
        assert v.dim() == 5 and v.shape[1] == 3 and len(b["caption"]) == v.shape[0]
        seen.add(tuple(v.shape[2:]))
        assert v.min() >= -1 and v.max() <= 1
        again = FolderStream(folder, BUCKETS, batch_size=2, seed=3).item(i)
        assert torch.equal(again["video"], v) and again["caption"] == b["caption"]
    assert seen <= {(5, 32, 48), (5, 32, 32), (1, 32, 32)} and len(seen) >= 2


def test_buckets_helpers():
    bs = parse_buckets([[128, 128, 25], "224x128x25", [128, 128, 1, 16]])
    assert bs[1] == Bucket(224, 128, 25) and bs[2].batch_size == 16
    for bad in ([[100, 128, 25]], [[128, 128, 24]], [[128, 128]], [], [[16, 16, 1]]):
        with pytest.raises(KinemaError):
            parse_buckets(bad)
    assert largest_valid_frames(12) == 9 and largest_valid_frames(1) == 1
    assert home_buckets(bs, 1920, 1080, 100) == [1]
    assert home_buckets(bs, 100, 100, 3) == [2]
    x = torch.rand(3, 2, 40, 80) * 2 - 1
    assert resize_crop(x, 32, 32).shape == (3, 2, 32, 32)


def test_bad_json_line_names_it(folder, tmp_path):
    (tmp_path / "a.mp4").write_bytes((folder / "wide.mp4").read_bytes())
    _write(tmp_path, ['{"path": "a.mp4", "caption": "ok"}', '{"path": "a.mp4", caption: oops}'])
    with pytest.raises(KinemaError, match="line 2: not valid JSON"):
        FolderStream(tmp_path, BUCKETS)
    _write(tmp_path, ['{"path": "a.mp4"}'])
    with pytest.raises(KinemaError, match='line 1: "caption" must be a string'):
        FolderStream(tmp_path, BUCKETS)


def test_missing_and_unreadable_clips_named(folder, tmp_path):
    _write(tmp_path, ['{"path": "missing.mp4", "caption": "x"}'])
    with pytest.raises(KinemaError, match="line 1: clip 'missing.mp4' not found"):
        FolderStream(tmp_path, BUCKETS)
    (tmp_path / "broken.mp4").write_bytes(b"this is not a video" * 10)
    _write(tmp_path, ['{"path": "broken.mp4", "caption": "x"}'])
    with pytest.raises(KinemaError, match="broken.mp4"):
        FolderStream(tmp_path, BUCKETS)
    (tmp_path / "short.mp4").write_bytes((folder / "sub" / "square.mp4").read_bytes())
    _write(tmp_path, ['{"path": "short.mp4", "caption": "x"}'])
    with pytest.raises(KinemaError, match="short.mp4: 6 frames.*fewer than every bucket"):
        FolderStream(tmp_path, [[32, 32, 9]])
    with pytest.raises(KinemaError, match="captions.jsonl: no such file"):
        FolderStream(folder / "sub", BUCKETS)


def test_train_vae_on_folder(folder, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "vae", "--preset", "smoke", "--data", str(folder), "--out", str(out), "--steps", "2",
               "--quiet"])
    assert rc == 0
    assert (out / "final" / "diffusion_pytorch_model.safetensors").is_file()
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "event" not in r] == [1, 2]


def test_cli_bad_folder_is_one_line_exit_2(folder, tmp_path, capsys):
    _write(tmp_path, ['{"path": "gone.mp4", "caption": "x"}'])
    rc = main(["train", "vae", "--preset", "smoke", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
               "--steps", "1", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "gone.mp4" in err and "line 1" in err
