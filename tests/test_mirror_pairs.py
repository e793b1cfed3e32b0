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
    real = flow.flow_matching_loss_terms

    def spy(model, x0, text_states, text_mask, cond_mask=None, generator=None, timesteps=None, noise=None, **kw):
        seen.append({"x0": x0.detach().clone(), "mask": text_mask.clone(), "cond": cond_mask.clone(),
                     "t": timesteps.clone(), "noise": noise.clone()})
        return real(model, x0, text_states, text_mask, cond_mask, generator, timesteps, noise, **kw)

    monkeypatch.setattr(flow, "flow_matching_loss_terms", spy)
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"caption_dropout": 0.5, "optim": {"batch_size": 4},
                             "data": {"mirror_pairs": True, "buckets": [[32, 32, 5]], "latent_cache": True,
                                      "latent_cache_batches": 2}}))
    out = tmp_path / "run"
    assert main(["train", "dit", "--preset", "smoke", "--config", str(f), "--vae", str(vae_run / "final"),
                 "--out", str(out), "--steps", "4", "--quiet"]) == 0
    assert len(seen) == 4
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
