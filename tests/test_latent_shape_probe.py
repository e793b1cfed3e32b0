"""benchmarks/latent_shape_probe.py: the latent window it reads and the probe it trains."""

import numpy as np
import torch
from conftest import load_script


def _module():
    return load_script("benchmarks/latent_shape_probe.py")


def test_latent_window_is_centred_on_the_objects_cell_and_zero_padded_at_the_border():
    probe = _module()
    z = torch.zeros(2, 3, 16, 16)                        # [C, T, H, W]
    z[:, 0, 5, 9] = 1.0                                   # first latent frame, the cell holding pixel (76, 44)
    window = probe.latent_window(z, x=76.0, y=44.0, patch=8, radius=2)
    assert window.shape == (2, 4, 4)                      # cells 4..7 down and 8..11 across
    assert window[0, 1, 1] == 1.0 and window[1, 1, 1] == 1.0 and window.sum() == 2.0
    corner = probe.latent_window(z, x=0.0, y=0.0, patch=8, radius=2)
    assert corner.shape == (2, 4, 4) and corner[:, :2].abs().sum() == 0 and corner[:, :, :2].abs().sum() == 0


def test_still_scenes_hold_one_still_object_of_the_asked_size():
    probe = _module()
    rng = np.random.default_rng(0)
    specs = [probe.still_scene(rng, "small", 128, 128) for _ in range(40)]
    assert all(len(s.objects) == 1 and s.objects[0].motion == "still" and s.objects[0].size == "small"
               for s in specs)
    assert len({s.objects[0].shape for s in specs}) == 4
    for s in specs:
        s.validate()


def test_probe_learns_a_separable_labelling_and_not_a_random_one():
    probe = _module()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 16, generator=g)
    y = (x[:, 3] > 0).long() + 2 * (x[:, 7] > 0).long()   # four classes from two of the inputs
    predict = probe.train_probe(x[:1500], y[:1500], 4)
    assert (predict(x[1500:]) == y[1500:]).float().mean() > 0.85
    shuffled = y[torch.randperm(2000, generator=g)]
    predict = probe.train_probe(x[:1500], shuffled[:1500], 4)
    assert (predict(x[1500:]) == shuffled[1500:]).float().mean() < 0.4  # chance is 0.25


def test_moving_scenes_hold_one_moving_object_that_stays_in_frame_for_25_frames():
    probe = _module()
    rng = np.random.default_rng(0)
    specs = [probe.moving_scene(rng, "small", 128, 128) for _ in range(40)]
    assert all(len(s.objects) == 1 and s.objects[0].motion != "still" and s.objects[0].size == "small"
               and s.num_frames == 25 for s in specs)
    assert len({s.objects[0].shape for s in specs}) == 4 and len({s.objects[0].motion for s in specs}) == 4
    for s in specs:
        s.validate()  # in frame from the first frame to the last


class _PoolingVAE(torch.nn.Module):
    """A stand-in autoencoder with the real one's packing: frame 0 alone, then 4 frames a latent frame,
    8x8 pixels a cell."""

    def encode(self, x):
        first = torch.nn.functional.avg_pool3d(x[:, :, :1], (1, 8, 8))
        rest = torch.nn.functional.avg_pool3d(x[:, :, 1:], (4, 8, 8))
        return torch.cat([first, rest], dim=2)

    def decode(self, z):
        first = torch.nn.functional.interpolate(z[:, :, :1], scale_factor=(1, 8, 8))
        rest = torch.nn.functional.interpolate(z[:, :, 1:], scale_factor=(4, 8, 8))
        return torch.cat([first, rest], dim=2)


def test_build_reads_moving_objects_in_the_second_latent_frame():
    probe = _module()
    feats, labels, truth, decoded = probe.build(_PoolingVAE(), 6, 0, "small", 128, 128, radius=2, batch=4,
                                                read_frame=2, moving=True)
    assert feats.shape == (6, 3 * 4 * 4) and labels.shape == (6,)
    assert all(t is not None for t in truth) and len(decoded) == 1 and len(decoded[0]) == 6
    # each window holds the object and background around it, not a flat stretch of background
    assert (feats.std(dim=1) > 0.05).all()
    still, _, _, _ = probe.build(_PoolingVAE(), 6, 0, "small", 128, 128, radius=2, batch=4)
    assert still.shape == feats.shape and not torch.equal(still, feats)
