"""The transformer's object loss finds world objects in latent clips against empty-background latents."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kinema.train.latent_foreground import LatentForeground
from kinema.world.render import render
from kinema.world.spec import BACKGROUNDS, SceneSpec


def pooling_encoder(video: torch.Tensor) -> torch.Tensor:
    """A stand-in encoder with a real encoder's traits: x8 space, x4 time (frame 0 alone), and
    latents at the borders that differ from the inside (as convolution padding makes them)."""
    first, rest = video[:, :, :1], video[:, :, 1:]
    b, c, t, h, w = rest.shape
    groups = rest.reshape(b, c, t // 4, 4, h, w).mean(3)
    z = torch.cat([first, groups], 2)
    z = F.avg_pool3d(z, (1, 8, 8)) * 4.0
    z[..., 0, :] += 3.0
    z[..., :, -1] -= 3.0
    return z


def clip(spec: SceneSpec) -> torch.Tensor:
    return torch.from_numpy(render(spec)).permute(3, 0, 1, 2).float()[None] / 127.5 - 1.0


def test_objects_are_marked_and_borders_are_not():
    spec = SceneSpec.from_dict({"width": 64, "height": 64, "fps": 12, "num_frames": 9, "background": "navy",
                                "seed": 0, "objects": [{"shape": "square", "color": "yellow", "size": "large",
                                                        "motion": "still", "start": [0.5, 0.5], "distance": 0.3}]})
    fg = LatentForeground(pooling_encoder, BACKGROUNDS.values(), spatial_factor=8, temporal_factor=4)
    z = pooling_encoder(clip(spec))
    mask = fg(z)
    assert mask.shape == (1, 3, 8, 8)
    # the object sits at the centre of every latent frame; nothing else is marked, borders included
    assert mask[0, :, 3:5, 3:5].all()
    assert mask[0, :, :2].sum() == 0 and mask[0, :, :, -2:].sum() == 0 and mask[0, :, 6:].sum() == 0
    # the frame's median latent would call the borders objects: the references are what tells them apart
    median = z.flatten(3).median(3).values[..., None, None]
    assert ((z - median).abs().amax(1) > fg.threshold)[0, :, 0, :-1].all()
    # one reference per background colour and latent size, encoded once
    assert fg.reference(3, 8, 8).shape == (len(BACKGROUNDS), 3, 3, 8, 8)
    assert fg.reference(3, 8, 8) is fg.reference(3, 8, 8)


def test_each_clip_is_compared_with_its_own_background():
    def spec(background: str, x: float) -> SceneSpec:
        return SceneSpec.from_dict({"width": 64, "height": 64, "fps": 12, "num_frames": 1, "background": background,
                                    "seed": 0, "objects": [{"shape": "circle", "color": "red", "size": "large",
                                                            "motion": "still", "start": [x, 0.5], "distance": 0.3}]})

    fg = LatentForeground(pooling_encoder, BACKGROUNDS.values(), spatial_factor=8, temporal_factor=4)
    z = torch.cat([pooling_encoder(clip(spec("sand", 0.25))), pooling_encoder(clip(spec("black", 0.75)))])
    mask = fg(z)
    assert mask[0, 0, 3:5, 1:3].any() and not mask[0, 0, :, 5:].any()
    assert mask[1, 0, 3:5, 5:7].any() and not mask[1, 0, :, :3].any()
    with pytest.raises(ValueError, match=r"\[B, C, t, h, w\]"):
        fg(z[0])
