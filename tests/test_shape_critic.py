"""The autoencoder's shape critic: where it crops, what it learns, and the run that uses it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kinema.cli import main
from kinema.errors import KinemaError
from kinema.train import shape_critic as sc
from kinema.train.config import resolve
from kinema.world import render
from kinema.world.spec import BACKGROUNDS, SHAPES, ObjectSpec, SceneSpec


def _scene(motion="right", shape="star", num_frames=25, start=(0.3, 0.5)):
    obj = ObjectSpec(shape=shape, color="red", size="large", motion=motion, start=start, distance=0.4)
    return SceneSpec(width=96, height=64, fps=12, num_frames=num_frames, background="navy", objects=[obj])


def _video(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0


def test_object_boxes_follow_each_object_through_its_frames_and_windows():
    spec = _scene()
    boxes = sc.object_boxes([spec.to_dict()], 25, 96, 64)
    assert boxes.shape == (25, 9)
    for f in (0, 12, 24):
        cx, cy = spec.center(spec.objects[0], f)
        assert boxes[f, 1] == f and boxes[f, 2] == pytest.approx(cx * 96) and boxes[f, 3] == pytest.approx(cy * 64)
    assert boxes[0, 5] == SHAPES.index("star")
    half = spec.object_width_px(spec.objects[0]) / 2
    assert boxes[0, 4] == pytest.approx(sc.MARGIN * half)
    assert boxes[0, 6:].tolist() == pytest.approx([c / 127.5 - 1 for c in BACKGROUNDS["navy"]])
    # a 5-frame window from frame 10 of the scene: its frame 0 is the scene's frame 10
    window = sc.object_boxes([{**spec.to_dict(), "window_start": 10}], 5, 96, 64)
    assert window.shape == (5, 9) and window[0, 2] == pytest.approx(boxes[10, 2])
    assert window[4, 2] == pytest.approx(boxes[14, 2]) and window[4, 1] == 4


def test_crops_are_centred_on_the_object_background_subtracted_and_differentiable():
    spec = _scene(motion="down", shape="square", start=(0.5, 0.25))
    video = _video(render(spec)).requires_grad_(True)
    boxes = sc.object_boxes([spec.to_dict()], 25, 96, 64)
    crops = sc.crop_objects(video, boxes)
    assert crops.shape == (25, 3, sc.CROP, sc.CROP)
    red = torch.tensor([220, 40, 40]) / 127.5 - 1 - torch.tensor(BACKGROUNDS["navy"]) / 127.5 + 1
    centre = crops[:, :, sc.CROP // 2, sc.CROP // 2]
    assert torch.allclose(centre, red.expand(25, 3), atol=0.02)       # the square's colour, every frame
    assert crops[:, :, 0, 0].abs().max() < 0.02                        # a corner: the background, subtracted
    crops.sum().backward()
    assert video.grad is not None and video.grad.abs().sum() > 0


def test_blur_keeps_flat_areas_and_softens_edges():
    flat = torch.full((2, 3, 24, 24), 0.5)
    assert torch.allclose(sc.blurred(flat, 1.5), flat, atol=1e-6)
    edge = torch.zeros(1, 1, 24, 24)
    edge[..., 12:] = 1.0
    soft = sc.blurred(edge, 1.5)
    assert 0.05 < soft[0, 0, 5, 11] < 0.95 and soft[0, 0, 5, 0] < 1e-3 and soft[0, 0, 5, 23] > 0.999


def test_critic_names_sharp_shapes_and_calls_blurred_ones_blurred():
    batches = sc.world_batches(3, [(64, 64, 5, 4), (64, 64, 1, 8)], window_of_frames=25)
    critic, accuracy = sc.train_critic(batches, steps=120, seed=0)
    assert accuracy > 0.9 and not any(p.requires_grad for p in critic.parameters())
    video, boxes = batches(500)
    crops = sc.crop_objects(video, boxes)
    with torch.no_grad():
        sharp = critic(crops).argmax(-1)
        blurred = critic(sc.blurred(crops, 2.5)).argmax(-1)
    assert (sharp == boxes[:, 5].long()).float().mean() > 0.85
    assert (blurred == sc.BLURRED).float().mean() > 0.85
    # the loss it gives a decoder: low on the true frames, high on blurred ones
    assert sc.shape_loss(critic, video, boxes) < 0.5


def test_shape_loss_weight_is_checked():
    assert resolve("vae", "tiny", overrides={"shape_loss_weight": 0.01}).shape_loss_weight == 0.01
    for bad in (-1.0, float("nan")):
        with pytest.raises(KinemaError, match="shape_loss_weight: must be"):
            resolve("vae", "tiny", overrides={"shape_loss_weight": bad})
    with pytest.raises(KinemaError, match="shape_loss_weight: the shape critic"):
        resolve("dit", "tiny", overrides={"shape_loss_weight": 0.01})
    with pytest.raises(KinemaError, match="shape_loss_weight: the shape critic"):
        resolve("vae", "tiny", overrides={"shape_loss_weight": 0.01, "data": {"source": "/some/folder"}})
    with pytest.raises(KinemaError, match="shape_critic_steps"):
        resolve("vae", "tiny", overrides={"shape_critic_steps": 0})


def test_a_vae_run_with_the_shape_loss_trains_keeps_and_reuses_its_critic(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"shape_loss_weight": 0.01, "shape_critic_steps": 300,
                                  "data": {"buckets": [[64, 64, 5, 2], [64, 64, 1, 4]], "window_of_frames": 25}}))
    out = tmp_path / "run"
    assert main(["train", "vae", "--preset", "smoke", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    assert (out / "shape_critic.safetensors").is_file() and (out / "final").is_dir()
    steps = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [r["shape_loss"] for r in steps if "shape_loss" in r]
    assert logged and all(np.isfinite(v) and v > 0 for v in logged)
    critic = (out / "shape_critic.safetensors").read_bytes()
    # a longer run resumed from it reads the critic back instead of training another
    assert main(["train", "vae", "--preset", "smoke", "--config", str(config), "--out", str(out), "--resume",
                 "--steps", "6", "--quiet"]) == 0
    assert (out / "shape_critic.safetensors").read_bytes() == critic
