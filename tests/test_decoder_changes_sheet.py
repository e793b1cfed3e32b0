"""benchmarks/decoder_changes_sheet.py: the videos two decoders' runs on the same kept latents judge
differently, drawn by both."""

import copy
import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import load_script
from kinema.eval.run import run_eval
from kinema.models.dit import DiTConfig
from kinema.models.text import TextEncoder
from kinema.models.vae import VAEConfig
from kinema.pipeline import Pipeline

sheet = load_script("benchmarks/decoder_changes_sheet.py")


def _sample(index, right, category="binding", split="seen", seed=0):
    return {"category": category, "split": split, "index": index, "seed": seed, "prompt": f"p{index}",
            "verdict": {category: right}, "detected": []}


def test_changed_videos_are_those_whose_verdict_differs_gained_first():
    a = [_sample(0, False), _sample(1, True), _sample(2, True), _sample(3, False, category="single")]
    b = [_sample(0, True), _sample(1, False), _sample(2, True), _sample(3, True, category="single")]
    pairs = sheet.changed_videos(a, b, {"binding"})
    assert [(pa["index"], pb["verdict"]["binding"]) for pa, pb in pairs] == [(0, True), (1, False)]
    assert sheet.changed_videos(a, b, {"relation"}) == []


def test_sheet_draws_both_decoders_frames_from_the_kept_latents(tmp_path, monkeypatch, capsys):
    size = {"width": 32, "height": 32, "fps": 8.0, "num_frames": 5}
    pipe = Pipeline.from_configs(VAEConfig(base_channels=8), DiTConfig(hidden_size=32, depth=2, num_heads=2),
                                 text_encoder=TextEncoder.from_pretrained(), seed=0, steps=2, size="32x32",
                                 fps=8.0, guidance=2.0, layout=False)
    kept = tmp_path / "kept"
    run_eval(pipe, kept, n=2, seeds=(0,), workers=1, progress=False, size_kwargs=size,
             categories=("single",), batch_size=2, keep_latents=True)
    other = copy.copy(pipe)
    other.vae = copy.deepcopy(pipe.vae)
    with torch.no_grad():
        for p in other.vae.decoder.parameters():
            p.add_(0.5)
    pipe.save_pretrained(tmp_path / "a")
    other.save_pretrained(tmp_path / "b")
    # Run B: run A's samples with the first video's verdict turned, as a decoder change would.
    samples = [json.loads(line) for line in (kept / "samples.jsonl").read_text().splitlines()]
    samples[0]["verdict"]["everything"] = not samples[0]["verdict"]["everything"]
    (tmp_path / "run_b").mkdir()
    (tmp_path / "run_b" / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))

    out = tmp_path / "sheet.png"
    monkeypatch.setattr(sys, "argv", ["decoder_changes_sheet.py", str(kept), "--a", str(tmp_path / "a"), str(kept),
                                      "--b", str(tmp_path / "b"), str(tmp_path / "run_b"),
                                      "--categories", "single", "-o", str(out)])
    sheet.main()
    assert "1 videos change verdict" in capsys.readouterr().out
    image = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert image.shape[1] > 6 * 32 and image.shape[0] < 3 * 32 + 60     # one row of six frames
    # The two halves are two decoders' frames of one video: they differ.
    left, right = image[:, : image.shape[1] // 2], image[:, image.shape[1] // 2:]
    assert np.abs(left[:, : right.shape[1]] - right[:, : left.shape[1]]).mean() > 1.0

    samples_b_same = tmp_path / "run_same"
    samples_b_same.mkdir()
    (samples_b_same / "samples.jsonl").write_text((kept / "samples.jsonl").read_text())
    monkeypatch.setattr(sys, "argv", ["decoder_changes_sheet.py", str(kept), "--a", str(tmp_path / "a"), str(kept),
                                      "--b", str(tmp_path / "b"), str(samples_b_same),
                                      "--categories", "single", "-o", str(tmp_path / "none.png")])
    with pytest.raises(SystemExit, match="no video changes its verdict"):
        sheet.main()
    assert not (tmp_path / "none.png").exists()
