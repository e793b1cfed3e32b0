"""Causal video autoencoder: causality, shapes, chunked decoding, input checks, config, training."""

import json

import pytest
import torch

from kinema.errors import KinemaError
from kinema.models.vae import CausalVideoVAE, VAEConfig, foreground_mask
from kinema.object_weights import area_balanced_weights


def tiny_config(**kw) -> VAEConfig:
    d = dict(base_channels=8, channel_mult=(1, 2, 2), latent_channels=4, num_res_blocks=1)
    d.update(kw)
    return VAEConfig(**d)


@pytest.fixture(scope="module")
def vae() -> CausalVideoVAE:
    torch.manual_seed(0)
    return CausalVideoVAE(tiny_config()).eval()


def clip(T, H, W, B=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, 3, T, H, W, generator=g) * 2 - 1


@pytest.mark.parametrize("T", [1, 5, 9])
@pytest.mark.parametrize("HW", [(32, 32), (64, 32), (32, 64), (48, 16)])
def test_shapes(vae, T, HW):
    H, W = HW
    with torch.no_grad():
        z = vae.encode(clip(T, H, W, B=2))
        assert z.shape == (2, 4, 1 + (T - 1) // 4, H // 8, W // 8)
        assert vae.latent_shape(T, H, W) == tuple(z.shape[1:])
        x = vae.decode(z)
    assert x.shape == (2, 3, T, H, W)
    assert torch.isfinite(x).all()


def test_encoder_is_causal(vae):
    x = clip(13, 16, 16)
    with torch.no_grad():
        z = vae.encode(x)
        for k, first_changed_group in [(1, 1), (4, 1), (5, 2), (9, 3), (12, 3)]:
            x2 = x.clone()
            x2[:, :, k] = -x2[:, :, k]
            z2 = vae.encode(x2)
            g = first_changed_group
            assert torch.equal(z[:, :, :g], z2[:, :, :g]), f"frame {k} leaked into earlier latents"
            assert not torch.allclose(z[:, :, g], z2[:, :, g]), f"frame {k} did not reach latent {g}"


def test_first_frame_is_encoded_alone(vae):
    """An image is a 1-frame clip in the same latent space as a clip's first frame."""
    x = clip(9, 16, 16)
    with torch.no_grad():
        assert torch.allclose(vae.encode(x)[:, :, :1], vae.encode(x[:, :, :1]), atol=1e-5)


def test_decoder_is_causal(vae):
    z = torch.randn(1, 4, 4, 2, 2)
    with torch.no_grad():
        x = vae.decode(z)
        for j in range(1, 4):
            z2 = z.clone()
            z2[:, :, j] += 1.0
            x2 = vae.decode(z2)
            first = 1 + 4 * (j - 1)  # latent j decodes to frames 4j-3 .. 4j
            assert torch.equal(x[:, :, :first], x2[:, :, :first])
            assert not torch.allclose(x[:, :, first : first + 4], x2[:, :, first : first + 4])


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunked_decode_equals_full(vae, chunk):
    z = torch.randn(1, 4, 5, 4, 2)
    with torch.no_grad():
        full = vae.decode(z)
        part = vae.decode(z, chunk_size=chunk)
    assert part.shape == full.shape == (1, 3, 17, 32, 16)
    assert torch.allclose(full, part, atol=1e-4)


@pytest.mark.parametrize(
    "T,H,W,word",
    [(4, 16, 16, r"1\+4k"), (0, 16, 16, r"1\+4k"), (6, 16, 16, "T=6"), (5, 12, 16, "height"),
     (5, 16, 20, "width"), (5, 0, 16, "height")],
)
def test_bad_input_raises(vae, T, H, W, word):
    with pytest.raises(ValueError, match=word):
        CausalVideoVAE.check_input(T, H, W)
    if T > 0 and H > 0:
        with pytest.raises(ValueError, match=word):
            vae.encode(torch.zeros(1, 3, T, H, W))


def test_bad_input_is_a_kinema_error():
    with pytest.raises(KinemaError):
        CausalVideoVAE.check_input(2, 8, 8)
    CausalVideoVAE.check_input(1, 8, 8)
    CausalVideoVAE.check_input(25, 128, 72)


def test_config_round_trip():
    cfg = tiny_config()
    d = json.loads(json.dumps(cfg.to_dict()))
    assert VAEConfig.from_dict(d) == cfg
    assert d["latent_mean"] == [0.0] * 4 and d["latent_std"] == [1.0] * 4
    assert VAEConfig().latent_mean == [0.0] * 8
    with pytest.raises(ValueError, match="colour_depth"):
        VAEConfig.from_dict({**d, "colour_depth": 8})
    with pytest.raises(ValueError, match="latent_mean"):
        VAEConfig(latent_channels=4, latent_mean=[0.0, 1.0])


def test_latent_stats_normalise():
    torch.manual_seed(0)
    vae = CausalVideoVAE(tiny_config()).eval()
    x = clip(5, 16, 16)
    with torch.no_grad():
        raw = vae.encode(x)
        mean, std = [0.5, -1.0, 0.0, 2.0], [2.0, 0.5, 1.0, 4.0]
        vae.set_latent_stats(torch.tensor(mean), std)
        assert vae.config.latent_mean == mean and vae.config.latent_std == std
        z = vae.encode(x)
        expect = (raw - torch.tensor(mean).view(1, -1, 1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1, 1)
        assert torch.allclose(z, expect, atol=1e-5)
        # decode undoes the normalisation: same pixels as before the statistics were set
        vae.set_latent_stats([0.0] * 4, [1.0] * 4)
        before = vae.decode(raw)
        vae.set_latent_stats(mean, std)
        assert torch.allclose(vae.decode(z), before, atol=1e-4)
    assert VAEConfig.from_dict(json.loads(json.dumps(vae.config.to_dict()))).latent_std == std
    with pytest.raises(ValueError):
        vae.set_latent_stats([0.0] * 4, [1.0, 0.0, 1.0, 1.0])


def test_tiny_vae_overfits_one_clip():
    torch.manual_seed(0)
    vae = CausalVideoVAE(tiny_config(base_channels=8, channel_mult=(1, 2, 2))).train()
    # a smooth moving blob: structure a tiny model can learn quickly
    T, H, W = 5, 16, 16
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing="ij")
    frames = [torch.exp(-((xs - 0.8 + 0.3 * t) ** 2 + ys**2) * 4) for t in range(T)]
    blob = torch.stack(frames)  # [T, H, W]
    x = torch.stack([blob * 1.6 - 0.8, 0.5 - blob, blob * 0.0 + 0.2])[None]
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    first = None
    for _ in range(100):
        out = vae.loss(x)
        assert set(out) >= {"loss", "recon", "reg"}
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first if first is not None else out["recon"].item()
    vae.eval()
    with torch.no_grad():
        rec, z = vae(x)
        final = (torch.nn.functional.mse_loss(rec, x) + torch.nn.functional.l1_loss(rec, x)).item()
    assert z.shape == (1, 4, 2, 2, 2)
    assert final < 0.2 * first, (first, final)


def test_motion_and_edge_loss_terms_add_l1_of_differences(vae):
    vae.eval()  # posterior mean: the same reconstruction every call
    torch.manual_seed(3)
    x = torch.rand(2, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        base = vae.loss(x)["loss"]
        rec = vae.decode(vae.encode(x))
        motion = torch.nn.functional.l1_loss(rec.diff(dim=2), x.diff(dim=2))
        edge = (torch.nn.functional.l1_loss(rec.diff(dim=3), x.diff(dim=3))
                + torch.nn.functional.l1_loss(rec.diff(dim=4), x.diff(dim=4)))
        assert float(motion) > 0 and float(edge) > 0
        assert vae.loss(x, motion_weight=2.0)["loss"] == pytest.approx(float(base + 2.0 * motion), rel=1e-5)
        assert vae.loss(x, edge_weight=0.5)["loss"] == pytest.approx(float(base + 0.5 * edge), rel=1e-5)
        still = x[:, :, :1]
        assert vae.loss(still, motion_weight=2.0)["loss"] == pytest.approx(float(vae.loss(still)["loss"]))


def test_foreground_mask_marks_objects_on_a_flat_background():
    x = torch.full((1, 3, 2, 16, 16), -0.5)
    x[:, :, 0, 4:8, 4:8] = torch.tensor([0.8, -0.6, -0.6])[:, None, None]   # a red square, frame 0
    x[:, 2, 1, 10:12, 2:5] = 0.0                                            # a faint object, frame 1
    mask = foreground_mask(x)
    assert mask.shape == (1, 2, 16, 16)
    assert mask[0, 0].sum() == 16 and mask[0, 0, 4:8, 4:8].all()
    assert mask[0, 1].sum() == 6 and mask[0, 1, 10:12, 2:5].all()
    assert not foreground_mask(torch.full((1, 3, 1, 8, 8), 0.3)).any()


def test_object_loss_term_averages_over_foreground_of_input_and_reconstruction(vae):
    vae.eval()
    x = torch.full((1, 3, 5, 32, 32), -0.6)
    x[:, 0, :, 8:16, 8:16] = 0.7
    with torch.no_grad():
        base = vae.loss(x)["loss"]
        rec = vae.decode(vae.encode(x))
        mask = foreground_mask(x) | foreground_mask(rec)
        err = (rec - x).abs()
        expected = ((err + err.pow(2)).mean(dim=1) * mask).sum() / mask.sum()
        assert vae.loss(x, object_weight=0.3)["loss"] == pytest.approx(float(base + 0.3 * expected), rel=1e-5)
        # the term charges object pixels far more than the whole-frame mean does
        assert float(expected) > float(vae.loss(x)["recon"])


def test_area_balanced_object_weights_let_a_small_object_count_about_as_much_as_a_large_one():
    mask = torch.zeros(1, 1, 128, 128, dtype=torch.bool)
    mask[0, 0, 10:48, 10:48] = True  # a large world object: 0.30 of the side, 38 px
    mask[0, 0, 80:99, 80:99] = True  # a small one: 0.15, 19 px, a quarter of the pixels
    w = area_balanced_weights(mask)
    large, small = float(w[0, 0, 10:48, 10:48].sum()), float(w[0, 0, 80:99, 80:99].sum())
    assert float(w[~mask].abs().sum()) == 0.0
    assert large / small < 2.0  # pooled pixels would make it 4


def test_balanced_object_term_charges_a_small_objects_error_more(vae):
    vae.eval()
    x = torch.full((1, 3, 1, 64, 64), -0.6)
    x[:, 0, :, 4:24, 4:24] = 0.7    # large
    x[:, 0, :, 44:54, 44:54] = 0.7  # small
    with torch.no_grad():
        rec = vae.decode(vae.encode(x))
        small_wrong = x.clone()
        small_wrong[:, 0, :, 44:54, 44:54] = -0.6  # the small object lost
        for balance in (False, True):
            mask = foreground_mask(x)
            weight = area_balanced_weights(mask) if balance else mask.float()
            err = (small_wrong - x).abs()
            share = float(((err + err.pow(2)).mean(dim=1) * weight).sum() / weight.sum())
            if balance:
                assert share > 1.5 * unbalanced  # losing the small object now costs far more
            unbalanced = share
        # and the loss itself uses the weights when asked
        plain = vae.loss(x, object_weight=0.3)["loss"]
        balanced = vae.loss(x, object_weight=0.3, object_balance=True)["loss"]
        assert torch.isfinite(balanced) and float(balanced) != float(plain)
        del rec


def test_extra_decoder_blocks_start_as_the_identity():
    from kinema.models.vae import grown_decoder_keys

    torch.manual_seed(0)
    plain = CausalVideoVAE(tiny_config()).eval()
    grown = CausalVideoVAE(tiny_config(decoder_extra_blocks=2)).eval()
    missing, unexpected = grown.load_state_dict(plain.state_dict(), strict=False)
    assert set(missing) == grown_decoder_keys(grown) and not unexpected
    assert len(missing) == 3 * 2 * 8  # 3 stages x 2 blocks x (2 norms, 2 convs) x (weight, bias)
    x = clip(5, 32, 32)
    with torch.no_grad():
        assert torch.equal(plain.decode(plain.encode(x)), grown.decode(grown.encode(x)))
    assert grown_decoder_keys(plain) == set()


@pytest.mark.parametrize("bad", [-1, 1.5, "1"])
def test_extra_decoder_blocks_must_be_a_whole_number(bad):
    with pytest.raises(KinemaError, match="decoder_extra_blocks"):
        tiny_config(decoder_extra_blocks=bad)
