"""Mirror pairs: half of each world batch is the other half seen in a mirror, trained with the
same noise, timestep, caption dropout and given frames as its original."""

import json
import re

import numpy as np
import pytest
import torch

from kinema.cli import main
from kinema.data.world_stream import WorldStream
from kinema.errors import KinemaError
from kinema.world import SceneSpec
from kinema.world.mirror import has_heldout_object, mirror_spec
from kinema.world.render import render
from kinema.world.sample import sample_spec


def _swap_sides(text: str) -> str:
    return re.sub(r"\b(left|right)\b", lambda m: "right" if m.group(1) == "left" else "left", text)


def test_mirror_spec_mirrors_starts_and_horizontal_motions_only():
    spec = SceneSpec.from_dict({"width": 64, "height": 48, "num_frames": 9, "background": "navy", "objects": [
        {"shape": "star", "color": "red", "size": "small", "motion": "left", "start": [0.7, 0.3]},
        {"shape": "square", "color": "blue", "size": "small", "motion": "down", "start": [0.15, 0.4]}]})
    m = mirror_spec(spec)
    assert [o.motion for o in m.objects] == ["right", "down"]
    assert m.objects[0].start == pytest.approx((0.3, 0.3)) and m.objects[1].start == pytest.approx((0.85, 0.4))
    assert [o.motion for o in spec.objects] == ["left", "down"] and spec.objects[0].start == (0.7, 0.3)
    m.validate()
    # every world shape is left-right symmetric: the mirror's rendering is the frames flipped
    np.testing.assert_array_equal(render(m), render(spec)[:, :, ::-1])


def test_the_mirror_of_a_train_scene_can_hold_a_heldout_combination():
    spec = SceneSpec.from_dict({"width": 64, "height": 64, "num_frames": 9, "objects": [
        {"shape": "circle", "color": "red", "size": "large", "motion": "right", "start": [0.3, 0.5]}]})
    assert not has_heldout_object(spec)
    assert has_heldout_object(mirror_spec(spec))  # a circle moving left is held out


def test_stream_pairs_each_scene_with_its_mirror():
    ds = WorldStream(seed=3, buckets=[(64, 48, 5, 8)], count_weights=[1, 1, 1], mirror_pairs=True, uint8=True)
    horizontal = 0
    for index in range(6):
        item = ds.item(index)
        video, captions, specs = item["video"], item["caption"], item["spec"]
        assert video.shape == (8, 3, 5, 48, 64) and len(captions) == len(specs) == 8
        for i in range(4):
            torch.testing.assert_close(video[4 + i], video[i].flip(-1))
            assert captions[4 + i] == _swap_sides(captions[i])
            original, mirrored = SceneSpec.from_dict(specs[i]), SceneSpec.from_dict(specs[4 + i])
            assert mirrored.to_dict() == mirror_spec(original).to_dict()
            assert not has_heldout_object(original) and not has_heldout_object(mirrored)
            # each clip is its own spec rendered
            np.testing.assert_array_equal(video[4 + i].permute(1, 2, 3, 0).numpy(), render(mirrored))
            horizontal += any(o.motion in ("left", "right") for o in original.objects)
    assert horizontal >= 5  # the pairs do carry horizontal motions to tell apart


def test_stream_without_pairs_is_unchanged_by_the_option():
    """The option's code path leaves ordinary streams (and every cache built from them) as they were."""
    ds = WorldStream(seed=4, buckets=[(32, 32, 5, 4)])
    item = ds.item(0)
    rng = np.random.default_rng([4, 0, 0])
    rng.integers(1)  # the bucket draw
    first = sample_spec(rng, width=32, height=32, num_frames=5)
    assert item["spec"][0] == first.to_dict()


def test_pairs_are_refused_where_they_cannot_work():
    with pytest.raises(ValueError, match="mirror_pairs: only the train split"):
        WorldStream(split="heldout", buckets=[(32, 32, 5, 4)], mirror_pairs=True)
    with pytest.raises(ValueError, match="mirror_pairs: every batch size must be even"):
        WorldStream(buckets=[(32, 32, 5, 4), (32, 32, 1, 3)], mirror_pairs=True)
    from kinema.train.config import resolve

    assert resolve("dit", "tiny", overrides={"data": {"mirror_pairs": True}}).data.mirror_pairs is True
    for overrides, problem in (
        ({"data": {"mirror_pairs": "yes"}}, "expected true or false"),
        ({"data": {"mirror_pairs": True, "source": "/tmp/clips"}}, "only the world's scenes"),
        ({"data": {"mirror_pairs": True}, "optim": {"batch_size": 3}}, "must be even"),
        ({"data": {"mirror_pairs": True, "buckets": [[32, 32, 5], [32, 32, 1, 5]]}}, "must be even"),
    ):
        with pytest.raises(KinemaError, match=f"data.mirror_pairs:? .*{problem}"):
            resolve("dit", "tiny", overrides=overrides)
    with pytest.raises(KinemaError, match="data.mirror_pairs: pairs are for the transformer stage"):
        resolve("vae", "tiny", overrides={"data": {"mirror_pairs": True}})


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vae")
    assert main(["train", "vae", "--preset", "smoke", "--out", str(out), "--quiet"]) == 0
    return out


def test_training_gives_a_scene_and_its_mirror_the_same_draws(tmp_path, monkeypatch, vae_run):
    import kinema.diffusion.flow as flow

    seen = []
    real, real_add_noise = flow.flow_matching_loss_terms, flow.add_noise

    def spy(model, x0, text_states, text_mask, cond_mask=None, *args, **kw):
        seen.append({"x0": x0.detach().clone(), "mask": text_mask.clone(), "cond": cond_mask.clone()})
        return real(model, x0, text_states, text_mask, cond_mask, *args, **kw)

    def add_noise_spy(x0, noise, t):  # the noise and per-frame t the model is given
        seen[-1].update(t=t.clone(), noise=noise.clone())
        return real_add_noise(x0, noise, t)

    monkeypatch.setattr(flow, "flow_matching_loss_terms", spy)
    monkeypatch.setattr(flow, "add_noise", add_noise_spy)
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"caption_dropout": 0.5, "optim": {"batch_size": 4}, "pair_loss_weight": 2.0,
                             "data": {"mirror_pairs": True, "buckets": [[32, 32, 5]], "latent_cache": True,
                                      "latent_cache_batches": 2}}))
    out = tmp_path / "run"
    assert main(["train", "dit", "--preset", "smoke", "--config", str(f), "--vae", str(vae_run / "final"),
                 "--out", str(out), "--steps", "4", "--quiet"]) == 0
    assert len(seen) == 4
    logged = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "event" not in r]
    assert logged and all(r["pair_loss"] > 0 and "flow_loss" in r for r in logged)
    for s in seen:
        a, b = slice(0, 2), slice(2, 4)
        torch.testing.assert_close(s["t"][a], s["t"][b])
        torch.testing.assert_close(s["noise"][a], s["noise"][b])
        assert torch.equal(s["cond"][a], s["cond"][b])
        assert torch.equal(s["mask"][a], s["mask"][b])  # a caption is dropped with its mirror's
        assert not torch.equal(s["x0"][a], s["x0"][b])  # the clips themselves differ
    assert not torch.equal(seen[0]["noise"], seen[1]["noise"])  # fresh draws each step
    assert any((s["mask"].sum(1) == 2).any() for s in seen)  # some captions were dropped (to "")
    manifest = json.loads((out / "latent_cache" / "manifest.json").read_text())
    assert manifest["key"]["mirror_pairs"] is True
    from kinema.data.latent_cache import LatentCache

    entry = LatentCache(out / "latent_cache").entry(0)
    assert entry["caption"][2:] == [_swap_sides(c) for c in entry["caption"][:2]]


def test_pair_term_is_the_error_of_each_pairs_difference():
    from kinema.diffusion.flow import flow_matching_loss_terms

    torch.manual_seed(0)
    x0 = torch.randn(4, 2, 3, 4, 4)
    noise = torch.randn(2, 2, 3, 4, 4).repeat(2, 1, 1, 1, 1)
    t = torch.tensor([0.9, 0.3, 0.9, 0.3])
    cond = torch.tensor([[True, False, False], [False, False, False]]).repeat(2, 1)
    weights = torch.randn(2, 2)

    def model(x_t, tt, states, mask):  # any function of the input and the "words"
        return x_t * weights[0, 0] + states[:, :1, :1, None, None] * weights[0, 1] + x_t.pow(2) * weights[1, 0]

    states = torch.randn(4, 3, 5)
    mask = torch.ones(4, 3, dtype=torch.bool)
    terms = flow_matching_loss_terms(model, x0, states, mask, cond_mask=cond, timesteps=t, noise=noise,
                                     pair_weight=3.0)
    tt = torch.where(cond, torch.zeros(()), t[:, None])
    x_t = (1 - tt[:, None, :, None, None]) * x0 + tt[:, None, :, None, None] * noise
    err = model(x_t, tt, states, mask) - (noise - x0)
    keep = (~cond)[:, None, :, None, None].float().expand_as(err)
    flow = (err.pow(2) * keep).sum() / keep.sum()
    d = err[:2] - err[2:]
    pair = 0.25 * (d.pow(2) * keep[:2]).sum() / keep[:2].sum()
    torch.testing.assert_close(terms.flow, flow)
    torch.testing.assert_close(terms.pair, pair)
    torch.testing.assert_close(terms.total, flow + 3.0 * pair)
    # the plain loss of the pairs is the error of their mean plus that of their difference
    mean_part = ((err[:2] + err[2:]) / 2).pow(2).mul(keep[:2]).sum() / keep[:2].sum()
    torch.testing.assert_close(flow, mean_part + pair)
    with pytest.raises(ValueError, match="pair_weight: the batch must hold pairs"):
        flow_matching_loss_terms(model, x0[:3], states[:3], mask[:3], timesteps=t[:3], noise=noise[:3],
                                 pair_weight=1.0)


def test_pair_loss_weight_needs_mirror_pairs():
    from kinema.train.config import resolve

    cfg = resolve("dit", "tiny", overrides={"pair_loss_weight": 4.0, "data": {"mirror_pairs": True}})
    assert cfg.pair_loss_weight == 4.0
    with pytest.raises(KinemaError, match="pair_loss_weight: needs data.mirror_pairs"):
        resolve("dit", "tiny", overrides={"pair_loss_weight": 4.0})
    with pytest.raises(KinemaError, match="pair_loss_weight: must be >= 0"):
        resolve("dit", "tiny", overrides={"pair_loss_weight": -1.0, "data": {"mirror_pairs": True}})
