"""The grounding loss: object coverage on the token grid, which words name which object, the
targets and the loss, the transformer's attention maps, and `kinema train` with the loss on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from kinema.cli import main
from kinema.models.dit import DiTConfig, VideoDiT
from kinema.train.grounding import (grounding_loss, grounding_targets, phrase_spans, token_frames,
                                    tokens_of)
from kinema.world.captions import caption, object_groups
from kinema.world.masks import object_coverage
from kinema.world.sample import sample_spec
from kinema.world.spec import SIZES, ObjectSpec, SceneSpec


def _scene(*objects: ObjectSpec, size=(64, 64), frames=1) -> SceneSpec:
    return SceneSpec(width=size[0], height=size[1], num_frames=frames, background="gray",
                     objects=list(objects)).validate()


def _obj(color: str, shape: str, x: float, y: float, size: str = "large", motion: str = "still") -> ObjectSpec:
    return ObjectSpec(shape=shape, color=color, size=size, motion=motion, start=(x, y), distance=0.3)


# ----- coverage -----------------------------------------------------------------------------------

def test_object_coverage_lies_in_the_cells_under_the_object_and_the_top_object_hides_the_other():
    left = _scene(_obj("red", "square", 0.25, 0.25))
    cover = object_coverage(left, [0], 4, 4)
    assert cover.shape == (1, 1, 4, 4)
    assert cover[0, 0, :2, :2].sum() > 0.5 and cover[0, 0, 2:, :].sum() == 0 and cover[0, 0, :, 2:].sum() == 0
    # the share of the frame: a square fills its box, SIZES[size] of the shorter side wide
    assert cover.mean() == pytest.approx(SIZES["large"] ** 2, rel=0.05)
    # the same place, drawn second, hides what it covers of the first (world scenes never overlap,
    # specs written by hand for the renderer may)
    stacked = SceneSpec(width=64, height=64, num_frames=1, background="gray",
                        objects=[_obj("red", "square", 0.5, 0.5), _obj("blue", "square", 0.5, 0.5, size="small")])
    c = object_coverage(stacked, [0], 4, 4)
    assert (c.sum(0) <= 1 + 1e-6).all()
    assert c[0].sum() == pytest.approx(SIZES["large"] ** 2 * 16 - c[1].sum(), rel=0.05)


def test_sampled_coverage_is_close_to_the_exact_one():
    rng = np.random.default_rng(4)
    for _ in range(20):
        spec = sample_spec(rng, width=128, height=96, num_frames=9)
        exact = object_coverage(spec, [0, 8], 6, 8, samples=None)
        sampled = object_coverage(spec, [0, 8], 6, 8)
        assert np.abs(sampled - exact).max() < 0.1 and abs(sampled.sum() - exact.sum()) < 0.05 * exact.sum() + 0.1


def test_object_coverage_follows_motion_and_refuses_grids_and_frames_that_do_not_fit():
    moving = _scene(_obj("red", "circle", 0.2, 0.5, motion="right"), frames=9)
    cover = object_coverage(moving, [0, 8], 1, 4)
    assert cover[0, 0, 0].argmax() == 0 and cover[0, 1, 0].argmax() == 1
    with pytest.raises(ValueError, match="does not split into a 5x4 grid"):
        object_coverage(moving, [0], 4, 5)
    with pytest.raises(ValueError, match="frame 9"):
        object_coverage(moving, [9], 4, 4)


# ----- words ------------------------------------------------------------------------------------

def test_phrase_spans_finds_every_object_in_the_worlds_captions():
    rng = np.random.default_rng(0)
    for _ in range(300):
        spec = sample_spec(rng, width=64, height=64, num_frames=1)
        cap = caption(spec, rng)
        found = phrase_spans(spec, cap)
        assert sorted(i for members, _ in found for i in members) == list(range(len(spec.objects))), cap
        for members, spans in found:
            o = spec.objects[members[0]]
            words = [cap[a:b].lower() for a, b in spans]
            assert words[1] == o.color and words[2].rstrip("s") == o.shape, (cap, words)


def test_phrase_spans_tells_apart_objects_that_share_colour_and_shape_and_groups_identical_ones():
    spec = _scene(_obj("red", "circle", 0.2, 0.5), _obj("red", "circle", 0.8, 0.5, size="small"))
    cap = "a big red circle to the left of a small red circle that stays still"
    found = phrase_spans(spec, cap)
    assert [m for m, _ in found] == [[0], [1]]
    assert [cap[a:b] for a, b in found[1][1]] == ["small", "red", "circle"]
    twins = _scene(_obj("blue", "star", 0.2, 0.3), _obj("blue", "star", 0.8, 0.7))
    assert object_groups(twins) == [[0, 1]]
    cap = "Two large blue stars stay still. The background is gray."
    found = phrase_spans(twins, cap)
    assert found[0][0] == [0, 1] and [cap[a:b] for a, b in found[0][1]] == ["large", "blue", "stars"]
    assert phrase_spans(spec, "a sunset over the sea") == []  # not the world's words: nothing grounded


def test_tokens_of_picks_the_tokens_that_overlap_the_words():
    offsets = [(0, 0), (0, 1), (2, 5), (6, 9), (9, 11), (0, 0)]  # [CLS] a big pur ##ple [PAD]
    assert tokens_of([(6, 11)], offsets) == [3, 4]
    assert tokens_of([(2, 5), (6, 11)], offsets) == [2, 3, 4]
    assert tokens_of([(20, 25)], offsets) == []


def test_token_frames_map_token_times_to_the_last_frame_of_each_latent_frame():
    assert token_frames(25, 7, 4, 1) == [0, 4, 8, 12, 16, 20, 24]
    assert token_frames(25, 4, 4, 2) == [0, 8, 16, 24]
    assert token_frames(1, 1, 4, 1) == [0]


def test_grounding_targets_put_each_word_on_its_object(text_encoder):
    spec = _scene(_obj("red", "square", 0.25, 0.5), _obj("blue", "circle", 0.75, 0.5))
    cap = "a large red square stays still to the left of a large blue circle that stays still"
    offsets = text_encoder.token_offsets([cap, ""])
    targets, weights = grounding_targets([spec, spec], [cap, ""], offsets, (1, 4, 4), 4, 1, 32)
    assert targets.shape == (2, 32, 16) and weights.shape == (2, 32)
    words = {cap[a:b]: j for j, (a, b) in enumerate(offsets[0]) if b > a}
    grid = {w: targets[0, words[w]].reshape(4, 4) for w in ("large", "red", "square", "blue", "circle")}
    assert grid["red"][:, :2].sum() > 0 and grid["red"][:, 2:].sum() == 0
    assert grid["circle"][:, 2:].sum() > 0 and grid["circle"][:, :2].sum() == 0
    assert torch.equal(grid["red"], grid["square"]) and grid["red"].max() == 1.0
    # the words that name no object, and a dropped caption, are not charged
    assert weights[0].sum() == 6 and weights[0, words["left"]] == 0 and weights[0, words["stays"]] == 0
    assert weights[1].sum() == 0 and targets[1].sum() == 0


# ----- the loss and the attention maps ------------------------------------------------------------

def test_grounding_loss_is_the_share_of_attention_outside_the_object():
    targets = torch.zeros(1, 3, 4)
    targets[0, 1, :2] = 1.0  # token 1 names an object in video cells 0 and 1
    weights = torch.tensor([[0.0, 1.0, 0.0]])
    inside = torch.zeros(1, 1, 4, 3)
    inside[..., 1] = torch.tensor([0.5, 0.5, 0.0, 0.0])[:, None].T  # token 1's attention all in cells 0-1
    assert grounding_loss([inside], targets, weights).item() == pytest.approx(0.0, abs=1e-7)
    uniform = torch.full((1, 2, 4, 3), 1 / 3)
    assert grounding_loss([uniform], targets, weights).item() == pytest.approx(0.5)
    assert grounding_loss([inside, uniform], targets, weights).item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="at least one block"):
        grounding_loss([], targets, weights)


def _tiny_dit(**kw) -> VideoDiT:
    torch.manual_seed(0)
    model = VideoDiT(DiTConfig(in_channels=4, hidden_size=32, depth=2, num_heads=2, text_dim=16, **kw))
    with torch.no_grad():  # open the zero-initialised branches, as training would
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_the_transformer_reports_its_cross_attention_without_changing_its_output():
    model = _tiny_dit()
    x, t = torch.randn(2, 4, 3, 8, 8), torch.rand(2, 3)
    text, mask = torch.randn(2, 6, 16), torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    maps: list[torch.Tensor] = []
    with_maps = model(x, t, text, mask, cross_attention=maps)
    torch.testing.assert_close(with_maps, model(x, t, text, mask), rtol=1e-5, atol=1e-6)
    assert len(maps) == 2 and maps[0].shape == (2, 2, 3 * 4 * 4, 6)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(2, 2, 48))
    assert maps[1][1, :, :, 4:].abs().max() == 0  # padding gets no attention


def test_training_on_the_grounding_loss_moves_a_words_attention_onto_its_object():
    """The gradient reaches the attention: a few optimiser steps on the loss alone put a word's
    attention on the left half for one caption and on the right half for another."""
    model = _tiny_dit(frame_position=True)
    torch.manual_seed(1)
    x, t = torch.randn(2, 4, 1, 8, 8), torch.full((2, 1), 0.9)
    text, mask = torch.randn(2, 6, 16), torch.ones(2, 6, dtype=torch.bool)
    targets = torch.zeros(2, 6, 16)
    halves = torch.zeros(2, 4, 4)
    halves[0, :, :2], halves[1, :, 2:] = 1.0, 1.0
    targets[:, 2] = halves.reshape(2, 16)
    weights = torch.zeros(2, 6)
    weights[:, 2] = 1.0
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss() -> torch.Tensor:
        maps: list[torch.Tensor] = []
        model(x, t, text, mask, cross_attention=maps)
        return grounding_loss(maps, targets, weights)

    before = loss().item()
    for _ in range(60):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    after = loss().item()
    assert before > 0.4 and after < 0.5 * before, (before, after)


# ----- training ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def text_encoder():
    from kinema.models.text import TextEncoder

    return TextEncoder.from_pretrained(max_length=32)


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vae")
    assert main(["train", "vae", "--preset", "smoke", "--out", str(out), "--quiet"]) == 0
    return out


def _steps(out: Path) -> list[dict]:
    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "event" not in r]


def test_kinema_train_adds_the_grounding_loss_from_a_latent_cache_with_scene_specs(tmp_path, capsys, vae_run):
    vae = str(vae_run / "final")

    def run(name: str, **fields) -> int:
        cfg = tmp_path / f"{name}.json"
        cfg.write_text(json.dumps({"steps": 2, "log_every": 1, "ema_decay": 0.0, **fields}))
        return main(["train", "dit", "--preset", "smoke", "--config", str(cfg), "--vae", vae,
                     "--out", str(tmp_path / name), "--quiet"])

    cache = {"latent_cache": True, "latent_cache_batches": 2, "latent_cache_dir": str(tmp_path / "cache")}
    assert run("plain", data=cache) == 0
    assert run("grounded", grounding_loss_weight=0.5, data={**cache, "latent_cache_dir": str(tmp_path / "g")}) == 0
    plain, grounded = _steps(tmp_path / "plain"), _steps(tmp_path / "grounded")
    assert "grounding_loss" not in plain[0]
    first = grounded[0]
    assert 0 < first["grounding_loss"] <= 1
    assert first["flow_loss"] == pytest.approx(plain[0]["loss"], rel=1e-5)  # the same draws
    assert first["loss"] == pytest.approx(first["flow_loss"] + 0.5 * first["grounding_loss"], rel=1e-5)
    from kinema.data.latent_cache import LatentCache

    entry = LatentCache(tmp_path / "g", seed=0).entry(0)
    assert len(entry["spec"]) == len(entry["caption"]) == entry["latents"].shape[0]
    assert SceneSpec.from_dict(entry["spec"][0]).num_frames >= 1
    # straight from the world's stream too, one clip a step (the stream then yields unbatched items)
    assert run("streamed", grounding_loss_weight=0.5, optim={"batch_size": 1}, data={"buckets": [[32, 32, 5]]}) == 0
    assert 0 < _steps(tmp_path / "streamed")[0]["grounding_loss"] <= 1
    # a shared cache built without the grounding loss has no specs for it: refused, by name
    capsys.readouterr()
    assert run("reuse", grounding_loss_weight=0.5, data=cache) == 2
    err = capsys.readouterr().err
    assert "specs" in err and "data.latent_cache_dir" in err
    # the loss needs the world's specs
    assert run("folder", grounding_loss_weight=0.5, data={"source": str(tmp_path)}) == 2
    assert "grounding_loss_weight" in capsys.readouterr().err
    assert run("negative", grounding_loss_weight=-1) == 2
    assert "grounding_loss_weight: must be" in capsys.readouterr().err
