"""Scene layouts: the layout channels, the layout transformer, the scene planner, the placement
prior, and the pipeline that plans text->video with them."""

import json

import numpy as np
import pytest
import torch

from kinema.diffusion.flow import flow_matching_loss_terms
from kinema.diffusion.sampling import sample
from kinema.errors import KinemaError
from kinema.layout import LAYOUT_CHANNELS, layout_batch, layout_channels, layout_for_spec, outline_side
from kinema.layout import features as lf
from kinema.layout.placement import place_plan
from kinema.layout.planner import HEADS, RELATION_CLASSES, Plan, PlannerConfig, ScenePlanner, decode_plan
from kinema.models.dit import DiTConfig, VideoDiT, grow_layout_channels, zero_start_keys
from kinema.models.text import TextEncoder
from kinema.models.vae import ConfigError, VAEConfig
from kinema.pipeline import Pipeline
from kinema.train.planner import plan_targets, train_planner
from kinema.world.captions import canonical_caption, relation_between
from kinema.world.render import render
from kinema.world.spec import BACKGROUNDS, ObjectSpec, SceneSpec


def scene(*objects, frames=25, background="navy", width=128, height=128):
    return SceneSpec(width=width, height=height, num_frames=frames, background=background,
                     objects=list(objects)).validate()


# ----- layout channels -----------------------------------------------------------------------------

def test_layout_marks_the_object_box_with_its_words():
    spec = scene(ObjectSpec("star", "green", "large", "still", start=(0.25, 0.75)), background="sand")
    lay = layout_for_spec(spec, 7, 16, 16)
    assert lay.shape == (LAYOUT_CHANNELS, 7, 16, 16)
    box_cells = (0.30 * 16) ** 2  # a large object is 0.3 of the side wide: 4.8 x 4.8 cells
    assert lay[lf.COVER].sum(axis=(1, 2)) == pytest.approx([box_cells] * 7, rel=1e-5)
    green = lf.COLOR0 + list(lf.COLORS).index("green")
    assert np.allclose(lay[green], lay[lf.COVER])
    assert lay[lf.COLOR0:lf.SHAPE0].sum() == pytest.approx(lay[lf.COVER].sum(), rel=1e-5)
    star = lf.SHAPE0 + list(lf.SHAPES).index("star")
    assert np.allclose(lay[star], lay[lf.COVER])
    rows, cols = np.nonzero(lay[lf.COVER, 0])
    assert cols.mean() < 8 and rows.mean() > 8  # left and low in the frame
    sand = lf.BACKGROUND0 + list(BACKGROUNDS).index("sand")
    assert (lay[sand] == 1).all() and lay[lf.BACKGROUND0:].sum() == lay[sand].sum()


def _centre_x(lay, frame):
    cover = lay[lf.COVER, frame]
    return float((cover.sum(0) * (np.arange(cover.shape[1]) + 0.5)).sum() / cover.sum())


def test_layout_follows_the_motion_frame_by_frame():
    spec = scene(ObjectSpec("circle", "red", "small", "right", start=(0.2, 0.5), distance=0.5))
    lay = layout_for_spec(spec, 7, 16, 16)
    xs = [_centre_x(lay, k) for k in range(7)]
    assert all(b > a for a, b in zip(xs, xs[1:]))
    # latent frame 0 is video frame 0; the last, frames 21-24, sits at frame 22.5 of 24
    assert xs[0] == pytest.approx(0.2 * 16, abs=0.05)
    assert xs[-1] == pytest.approx((0.2 + 0.5 * 22.5 / 24) * 16, abs=0.05)
    right = lf.MOTION0 + list(lf.MOTIONS).index("right")
    assert np.allclose(lay[right], lay[lf.COVER])


def test_layout_offsets_say_where_the_centre_is_within_the_cell():
    spec = scene(ObjectSpec("square", "blue", "small", "still", start=(0.5, 0.5)))
    lay = layout_for_spec(spec, 1, 16, 16)
    # the centre is at cell corner (8, 8): cells left of it see it to their right (positive dx)
    assert lay[lf.OFFSET0, 0, 8, 7] > 0 > lay[lf.OFFSET0, 0, 8, 8]
    assert lay[lf.OFFSET0 + 1, 0, 7, 8] > 0 > lay[lf.OFFSET0 + 1, 0, 8, 8]


def test_a_later_window_layout_continues_the_scene():
    """Latents from video frame 8 on: latent frame 0 is frame 8 alone, latent frame k its k-th group
    of 4 after it, so groups 1.. land on the whole clip's groups 3.."""
    spec = scene(ObjectSpec("square", "green", "large", "right", start=(0.2, 0.5)))
    whole = layout_for_spec(spec, 7, 16, 16)
    later = layout_for_spec(spec, 3, 16, 16, start_frame=8)
    assert np.array_equal(later[:, 1:], whole[:, 3:5])
    assert not np.array_equal(later[:, 0], whole[:, 0])  # frame 8, not frame 0
    assert np.array_equal(layout_batch([spec], 3, 16, 16, start_frame=8)[0].numpy(), later)


def _outline_grid(lay, frame, side):
    """The outline channels of one latent frame as one sub-cell grid [h * side, w * side]."""
    _, _, h, w = lay.shape
    cells = lay[lf.OUTLINE0:, frame].reshape(side, side, h, w)
    return cells.transpose(2, 0, 3, 1).reshape(h * side, w * side)


def test_outline_channels_draw_each_shape_as_the_world_renders_it():
    """The outline is the rendered shape seen at sub-cell resolution: 4 x 4 sub-cells per latent
    cell, 2 pixels each at 128 x 128; the base channels are the same with or without it."""
    objects = [ObjectSpec("star", "yellow", "small", "still", start=(0.3, 0.3)),
               ObjectSpec("triangle", "red", "large", "right", start=(0.5, 0.7), distance=0.3)]
    spec = scene(*objects, background="black")
    lay = layout_for_spec(spec, 7, 16, 16, outline=4)
    assert lay.shape == (layout_channels(4), 7, 16, 16) == (42, 7, 16, 16)
    assert np.array_equal(lay[:LAYOUT_CHANNELS], layout_for_spec(spec, 7, 16, 16))
    frame0 = render(spec)[0].astype(np.float64)
    drawn = (np.abs(frame0 - frame0[0, 0]).sum(-1) > 30).astype(np.float64)  # the black corner is empty
    seen = drawn.reshape(64, 2, 64, 2).mean(axis=(1, 3))
    grid = _outline_grid(lay, 0, 4)
    assert np.abs(grid - seen).mean() < 0.01 and np.abs(grid - seen).max() < 0.75
    assert 0 <= grid.min() and grid.max() <= 1
    box = lay[lf.COVER, 0].repeat(4, 0).repeat(4, 1)
    assert (grid[box == 0] == 0).all()  # never outside the boxes
    # a star fills less of its box than a circle of the same size, in other sub-cells
    circle = layout_for_spec(scene(ObjectSpec("circle", "yellow", "small", "still", start=(0.3, 0.3))),
                             1, 16, 16, outline=4)
    star = layout_for_spec(scene(objects[0]), 1, 16, 16, outline=4)
    assert star[lf.OUTLINE0:].sum() < 0.75 * circle[lf.OUTLINE0:].sum()
    assert np.array_equal(star[lf.COVER], circle[lf.COVER])


def test_layout_channel_counts_name_the_outline():
    assert [layout_channels(s) for s in (0, 1, 4)] == [26, 27, 42]
    assert [outline_side(c) for c in (26, 27, 42, 90)] == [0, 1, 4, 8]
    for bad in (31, 25, 26 + 81, "42", True):
        with pytest.raises(ConfigError, match="layout_channels"):
            outline_side(bad)
    with pytest.raises(ConfigError, match="42 for s = 4"):
        outline_side(31)
    for bad in (9, -1, True, 2.0):
        with pytest.raises(ConfigError, match="outline must be"):
            layout_for_spec(scene(ObjectSpec("circle", "red")), 1, 8, 8, outline=bad)
    out = layout_batch([scene(ObjectSpec("circle", "red")), None], 2, 8, 8, outline=2)
    assert out.shape == (2, 30, 2, 8, 8) and out[1].abs().sum() == 0


def test_layout_batch_leaves_none_empty():
    spec = scene(ObjectSpec("circle", "red"))
    out = layout_batch([spec, None], 2, 8, 8)
    assert out.shape == (2, LAYOUT_CHANNELS, 2, 8, 8)
    assert out[0].abs().sum() > 0 and out[1].abs().sum() == 0


# ----- the layout transformer ---------------------------------------------------------------------

def _dit(layout_channels=LAYOUT_CHANNELS, seed=0):
    """A small transformer whose zero-start layers (but the layout's) are opened, so it computes something."""
    torch.manual_seed(seed)
    model = VideoDiT(DiTConfig(hidden_size=32, depth=2, num_heads=2, layout_channels=layout_channels)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.any() and not name.startswith("layout_embedder."):
                p.copy_(torch.randn(p.shape) * 0.05)
    return model


def _inputs(b=2, t=2, h=8, w=8):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(b, 8, t, h, w, generator=g)
    tt = torch.full((b, t), 0.6)
    states = torch.randn(b, 5, 384, generator=g)
    mask = torch.ones(b, 5, dtype=torch.bool)
    specs = [scene(ObjectSpec("circle", "red", "large", "up", start=(0.3, 0.6))),
             scene(ObjectSpec("star", "white", "small", "left", start=(0.7, 0.3)))]
    return x, tt, states, mask, layout_batch(specs[:b], t, h, w)


def test_layout_layer_starts_as_a_no_op_and_then_steers():
    plain, with_layout = _dit(0), _dit()
    assert zero_start_keys(with_layout) >= {"layout_embedder.weight", "layout_embedder.bias"}
    with_layout.load_state_dict(plain.state_dict(), strict=False)
    x, tt, s, m, lay = _inputs()
    with torch.no_grad():
        base = plain(x, tt, s, m)
        assert torch.equal(with_layout(x, tt, s, m, layout=lay), base)
        torch.nn.init.normal_(with_layout.layout_embedder.weight, std=0.1)
        steered = with_layout(x, tt, s, m, layout=lay)
        assert torch.equal(with_layout(x, tt, s, m, layout=torch.zeros_like(lay)), base)
    assert (steered - base).abs().max() > 1e-3


def test_growing_the_layout_layer_for_an_outline_keeps_the_outputs_until_trained():
    base = _dit()
    torch.nn.init.normal_(base.layout_embedder.weight, std=0.1)
    torch.nn.init.normal_(base.layout_embedder.bias, std=0.1)
    x, tt, s, m, _ = _inputs()
    specs = [scene(ObjectSpec("circle", "red", "large", "up", start=(0.3, 0.6))),
             scene(ObjectSpec("star", "white", "small", "left", start=(0.7, 0.3)))]
    lay26, lay42 = layout_batch(specs, 2, 8, 8), layout_batch(specs, 2, 8, 8, outline=4)
    with torch.no_grad():
        before = base(x, tt, s, m, layout=lay26)
        grown = _dit()
        grown.load_state_dict(base.state_dict())
        grow_layout_channels(grown, 42)
        assert grown.config.layout_channels == 42 and grown.layout_embedder.in_features == 42 * 4
        assert torch.equal(grown(x, tt, s, m, layout=lay42), before)
        grown.layout_embedder.weight[:, 26 * 4:].normal_(std=0.1)  # as training would
        assert (grown(x, tt, s, m, layout=lay42) - before).abs().max() > 1e-3
    with pytest.raises(ConfigError, match="cannot grow"):
        grow_layout_channels(grown, 26)


def test_layout_fast_path_matches_the_reference():
    model = _dit()
    torch.nn.init.normal_(model.layout_embedder.weight, std=0.1)
    x, tt, s, m, lay = _inputs()
    with torch.no_grad():
        fast = model(x, tt, s, m, layout=lay)
    reference = model(x, tt, s, m, layout=lay)  # with gradients: the reference path
    assert torch.allclose(fast, reference.detach(), atol=1e-4)


def test_no_layout_is_the_same_as_an_all_zero_layout():
    """Training gives a clip without a layout all zeros, so None (frame-conditioned modes) must add
    the layer's bias just as zeros do, in the fast path and the reference path."""
    model = _dit()
    torch.nn.init.normal_(model.layout_embedder.weight, std=0.1)
    torch.nn.init.normal_(model.layout_embedder.bias, std=0.5)
    x, tt, s, m, lay = _inputs()
    zeros = torch.zeros_like(lay)
    with torch.no_grad():
        assert torch.allclose(model(x, tt, s, m), model(x, tt, s, m, layout=zeros), atol=1e-5)
    assert torch.allclose(model(x, tt, s, m), model(x, tt, s, m, layout=zeros), atol=1e-5)
    with torch.no_grad():
        assert (model(x, tt, s, m) - _dit()(x, tt, s, m)).abs().max() > 1e-3  # the bias does count


def test_layout_shape_and_model_are_checked():
    x, tt, s, m, lay = _inputs()
    with pytest.raises(ConfigError, match="layout must be"):
        _dit()(x, tt, s, m, layout=lay[:, :5])
    with pytest.raises(ConfigError, match="without layout channels"):
        _dit(0)(x, tt, s, m, layout=lay)
    with pytest.raises(ConfigError, match="layout_channels"):
        DiTConfig(layout_channels=-1)


def test_flow_loss_and_sampler_hand_the_layout_to_the_model():
    model = _dit()
    torch.nn.init.normal_(model.layout_embedder.weight, std=0.1)
    x, tt, s, m, lay = _inputs()
    kw = dict(generator=None, timesteps=torch.tensor([0.5, 0.5]), noise=torch.ones_like(x))
    with torch.no_grad():
        a = flow_matching_loss_terms(model, x, s, m, layout=lay, **kw).total
        b = flow_matching_loss_terms(model, x, s, m, **kw).total
        assert float(a) != float(b)
        noise = torch.randn(2, 8, 2, 8, 8, generator=torch.Generator().manual_seed(0))
        z_lay = sample(model, noise, s, m, steps=2, guidance=1.0, layout=lay)
        z_none = sample(model, noise, s, m, steps=2, guidance=1.0)
        z_guided = sample(model, noise, s, m, steps=2, guidance=3.0, uncond_states=s[:1] * 0,
                          uncond_mask=m[:1], layout=lay)
    assert not torch.allclose(z_lay, z_none) and torch.isfinite(z_guided).all()


# ----- the planner and placement ------------------------------------------------------------------

def test_plan_targets_follow_the_naming_order():
    a = ObjectSpec("circle", "red", "small", "still", start=(0.2, 0.3))
    b = ObjectSpec("square", "blue", "large", "down", start=(0.7, 0.3), distance=0.35)
    t = plan_targets(scene(a, b))
    assert t["present"] == [1, 1, 0]
    assert t["relation"] == RELATION_CLASSES.index("left of")
    assert [HEADS["color"][i] for i in t["color"][:2]] == ["red", "blue"] and t["color"][2] == -100
    twins = scene(ObjectSpec("star", "pink", "small", "up", start=(0.2, 0.7)),
                  ObjectSpec("star", "pink", "small", "up", start=(0.8, 0.7)))
    t2 = plan_targets(twins)
    assert t2["present"] == [1, 1, 0] and t2["relation"] == 0  # "two pink stars": no relation
    assert "two small pink stars" in canonical_caption(twins)


def _logits(n, words, relation="none", background="gray", strength=12.0):
    out = {"present": torch.tensor([[strength if k < n else -strength for k in range(3)]]),
           "relation": torch.full((1, len(RELATION_CLASSES)), -strength),
           "background": torch.full((1, len(BACKGROUNDS)), -strength)}
    out["relation"][0, RELATION_CLASSES.index(relation)] = strength
    out["background"][0, list(BACKGROUNDS).index(background)] = strength
    for name, vocab in HEADS.items():
        out[name] = torch.full((1, 3, len(vocab)), -strength)
        for k, obj in enumerate(words):
            out[name][0, k, list(vocab).index(obj[name])] = strength
    return out


def test_decode_plan_reads_the_heads_and_refuses_doubt():
    words = [dict(color="yellow", shape="star", size="large", motion="left"),
             dict(color="green", shape="triangle", size="small", motion="still")]
    plan = decode_plan(_logits(2, words, "above"), 0)
    assert [(o.color, o.shape, o.size, o.motion) for o in plan.objects] == [
        ("yellow", "star", "large", "left"), ("green", "triangle", "small", "still")]
    assert plan.relation == "above" and plan.background == "gray" and plan.confidence > 0.99
    assert decode_plan(_logits(2, words, "above", strength=0.01), 0) is None  # unsure of everything
    assert decode_plan(_logits(1, words[:1], "above"), 0) is None  # a relation needs two objects
    gap = _logits(2, words)
    gap["present"][0] = torch.tensor([12.0, -12.0, 12.0])
    assert decode_plan(gap, 0) is None


def test_planner_ignores_the_padding_of_the_text():
    torch.manual_seed(0)
    planner = ScenePlanner(PlannerConfig(width=16, depth=2, num_heads=2)).eval()
    states = torch.randn(2, 9, planner.config.text_dim)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 5:] = False
    with torch.no_grad():
        padded = planner(states, mask)
        garbage = states.clone()
        garbage[1, 5:] = 100.0  # what sits under the mask must not matter
        changed = planner(garbage, mask)
        alone = planner(states[1:, :5], mask[1:, :5])  # the same prompt without its padding
    for name in padded:
        assert torch.allclose(padded[name], changed[name], atol=1e-5), name
        assert torch.allclose(padded[name][1:], alone[name], atol=1e-5), name
    assert not torch.allclose(padded["present"][0], padded["present"][1])


def test_planning_does_not_import_sympy():
    # torch's memory_key_padding_mask check imports sympy on first use, 0.2-0.5 s of every
    # `kinema generate`; the planner must plan without it
    import subprocess
    import sys

    code = ("import sys, torch\n"
            "from kinema.layout.planner import PlannerConfig, ScenePlanner\n"
            "p = ScenePlanner(PlannerConfig(width=16, depth=1, num_heads=2)).eval()\n"
            "m = torch.ones(1, 4, dtype=torch.bool); m[0, 3] = False\n"
            "with torch.no_grad(): p.plan(torch.randn(1, 4, p.config.text_dim), m)\n"
            "print('sympy' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("relation", ["left of", "right of", "above", "below"])
def test_placement_keeps_the_relation_and_the_frame(relation):
    plan = Plan(objects=[ObjectSpec("circle", "red", "large", "right"), ObjectSpec("square", "blue", "small", "up")],
                background="black", relation=relation, confidence=1.0)
    for seed in range(5):
        spec = place_plan(plan, 128, 128, 25, np.random.default_rng(seed))
        assert spec is not None and relation_between(spec, 0, 1) == relation
        spec.validate()
    a = place_plan(plan, 224, 128, 25, np.random.default_rng(1))
    b = place_plan(plan, 224, 128, 25, np.random.default_rng(1))
    assert a.to_dict() == b.to_dict() and a.width == 224


def test_placement_gives_none_when_nothing_fits():
    big = [ObjectSpec("circle", c, "large", "down") for c in ("red", "blue", "green")]
    plan = Plan(objects=big, background="navy", relation=None, confidence=1.0)
    assert place_plan(plan, 32, 32, 25, np.random.default_rng(0), tries=20) is None


@pytest.fixture(scope="module")
def te():
    return TextEncoder.from_pretrained()


def test_a_briefly_trained_planner_reads_unseen_combinations(te, tmp_path):
    report = train_planner(tmp_path, captions=2048, steps=250, batch_size=128, lr=2e-3, text_encoder=te,
                           config=PlannerConfig(width=64, depth=1), check_captions=300,
                           benchmark_prompts=10, log=lambda _: None)
    held = report["heldout_captions"]
    # chance: a quarter for the background, about a third for the count
    assert held["background"] > 0.9 and held["count"] > 0.8
    assert json.loads((tmp_path / "planner_report.json").read_text())["steps"] == 250
    assert (tmp_path / "planner" / "model.safetensors").is_file()
    cfg = PlannerConfig.from_dict(json.loads((tmp_path / "planner" / "config.json").read_text()))
    assert cfg.width == 64


# ----- the pipeline -------------------------------------------------------------------------------

def _three_small_objects_planner():
    """A random planner whose heads are pinned to three small objects, no relation and any words,
    with no confidence threshold: every prompt gets a plan (the same one)."""
    torch.manual_seed(5)
    planner = ScenePlanner(PlannerConfig(width=16, depth=1, num_heads=2, min_confidence=0.0))
    with torch.no_grad():
        for head in (planner.present, planner.relation, planner.attributes["size"]):
            head.weight.zero_()
        planner.present.bias.fill_(10.0)
        planner.relation.bias.copy_(torch.tensor([10.0, 0, 0, 0, 0]))
        planner.attributes["size"].bias.copy_(torch.tensor([10.0, 0.0]))  # small, large
    return planner


@pytest.fixture(scope="module")
def layout_pipe(te):
    planner = _three_small_objects_planner()
    p = Pipeline.from_configs(VAEConfig(base_channels=8),
                              DiTConfig(hidden_size=32, depth=2, num_heads=2, layout_channels=LAYOUT_CHANNELS),
                              text_encoder=te, seed=0, steps=2, max_latent_frames=4, size="64x64")
    torch.manual_seed(0)
    torch.nn.init.normal_(p.transformer.layout_embedder.weight, std=0.2)
    torch.nn.init.normal_(p.transformer.final_layer.linear.weight, std=0.05)
    p.planner = planner
    return p


def test_every_window_of_a_long_clip_follows_the_plan(layout_pipe, monkeypatch):
    """A clip longer than one window is planned whole; each window gets the plan's layout from the
    video frame it starts at. Extending a given video plans nothing."""
    calls = []
    real = Pipeline.scene_layouts

    def spy(self, specs, latent_frames, lat_h, lat_w, start_frame=0):
        calls.append((latent_frames, start_frame, specs[0].num_frames))
        return real(self, specs, latent_frames, lat_h, lat_w, start_frame)

    monkeypatch.setattr(Pipeline, "scene_layouts", spy)
    v = layout_pipe.generate("a large red circle moves right", num_frames=25, seed=3, progress=False)
    # windows of 4 latent frames (13 video frames), 1 carried over: the second starts at frame 12
    assert calls == [(4, 0, 25), (4, 12, 25)]
    assert v.frames.shape[0] == 25 and len(v.metadata["plan"]["starts"]) == 3
    calls.clear()
    extended = layout_pipe.generate("a large red circle moves right", video=v.frames[:9], mode="extend",
                                    num_frames=16, progress=False)
    assert calls == [] and "plan" not in extended.metadata


def test_pipeline_plans_text_to_video_and_says_so(layout_pipe):
    v = layout_pipe.generate("a large red circle moves right", num_frames=9, seed=3, progress=False)
    plan = v.metadata["plan"]
    assert len(plan["objects"]) == 3 and {o["size"] for o in plan["objects"]} == {"small"}
    assert plan["relation"] is None and len(plan["starts"]) == 3
    assert plan["background"] in BACKGROUNDS
    assert layout_pipe.last_timings["plan"] > 0.0  # planning is a stage of its own in the timings
    plain = layout_pipe.generate("a large red circle moves right", num_frames=9, seed=3, progress=False,
                                 layout=False)
    assert "plan" not in plain.metadata and layout_pipe.last_timings["plan"] == 0.0
    assert not np.array_equal(v.frames, plain.frames)
    again = layout_pipe.generate("a large red circle moves right", num_frames=9, seed=3, progress=False)
    assert np.array_equal(v.frames, again.frames) and again.metadata["plan"] == plan
    batch = layout_pipe.generate_batch(["a large red circle moves right"], seeds=[3], num_frames=9)
    assert batch[0].metadata["plan"] == plan
    assert np.abs(batch[0].frames.astype(int) - v.frames.astype(int)).max() <= 2
    with pytest.raises(KinemaError, match="layout must be true or false"):
        layout_pipe.generate("a red circle", num_frames=1, progress=False, layout="yes")
    with pytest.raises(KinemaError, match="layout must be true or false"):  # a bad default fails at load
        Pipeline(layout_pipe.vae, layout_pipe.transformer, layout_pipe.text_encoder, {"layout": "on"},
                 planner=layout_pipe.planner)


def test_pipeline_saves_and_loads_the_planner(layout_pipe, te, tmp_path, monkeypatch):
    folder = layout_pipe.save_pretrained(tmp_path / "m")
    assert (folder / "planner" / "config.json").is_file()
    assert json.loads((folder / "model_index.json").read_text())["planner"][1] == "ScenePlanner"
    monkeypatch.setattr(TextEncoder, "from_pretrained", classmethod(lambda cls, *a, **k: te))
    loaded = Pipeline.from_pretrained(folder)
    a = layout_pipe.generate("a red circle", num_frames=5, seed=1, progress=False)
    b = loaded.generate("a red circle", num_frames=5, seed=1, progress=False)
    assert np.array_equal(a.frames, b.frames) and a.metadata["plan"] == b.metadata["plan"]


def test_an_outline_transformer_gets_planned_outlines(layout_pipe, te, monkeypatch):
    pipe = Pipeline.from_configs(VAEConfig(base_channels=8),
                                 DiTConfig(hidden_size=32, depth=2, num_heads=2, layout_channels=42),
                                 text_encoder=te, seed=0, steps=2, max_latent_frames=4, size="64x64")
    torch.manual_seed(0)
    torch.nn.init.normal_(pipe.transformer.layout_embedder.weight, std=0.2)
    pipe.planner = layout_pipe.planner
    given = []
    real = VideoDiT.forward

    def spy(self, *args, layout=None, **kwargs):
        given.append(layout)
        return real(self, *args, layout=layout, **kwargs)

    monkeypatch.setattr(VideoDiT, "forward", spy)
    v = pipe.generate("a large red circle moves right", num_frames=5, seed=3, progress=False)
    assert len(v.metadata["plan"]["objects"]) == 3
    planned = [x for x in given if x is not None and x.abs().sum() > 0]
    assert planned and all(x.shape[1] == 42 for x in planned)
    assert all(x[:, lf.OUTLINE0:].sum() > 0 for x in planned)  # the three small objects' outlines
    with pytest.raises(KinemaError, match="layout_channels 31"):
        Pipeline(pipe.vae, VideoDiT(DiTConfig(hidden_size=32, depth=2, num_heads=2, layout_channels=31)), te,
                 planner=pipe.planner)


def test_a_planner_needs_a_layout_transformer(te):
    with pytest.raises(KinemaError, match="takes no layout"):
        Pipeline(Pipeline.from_configs(VAEConfig(base_channels=8), DiTConfig(hidden_size=32, depth=2, num_heads=2),
                                       text_encoder=te).vae,
                 VideoDiT(DiTConfig(hidden_size=32, depth=2, num_heads=2)), te,
                 planner=ScenePlanner(PlannerConfig(width=16, depth=1, num_heads=2)))


def test_train_planner_command_checks_its_flags(tmp_path, capsys):
    from kinema.cli import main

    assert main(["train", "planner", "--vae", "x", "--out", str(tmp_path)]) != 0
    assert "--vae is not for `kinema train planner`" in capsys.readouterr().err
    assert main(["train", "planner"]) != 0
    assert "needs --out" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_describe_plan_reads_like_the_prompt():
    from kinema.layout.planner import describe_plan

    plan = Plan(objects=[ObjectSpec("circle", "red", "large", "right"), ObjectSpec("star", "blue", "small", "still")],
                background="navy", relation="left of", confidence=0.9).to_dict()
    assert describe_plan(plan) == ("a large red circle moving right left of a small blue star staying still, "
                                   "on navy")


def test_layout_training_and_shipping_with_a_planner(tmp_path, te, monkeypatch):
    """A smoke run of a layout transformer on the world (its clips' specs become layouts), shipped
    with a scene planner; the shipped folder plans text->video."""
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import save_file

    from kinema.cli import main

    cfg = tmp_path / "layout.json"
    cfg.write_text(json.dumps({"model": {"layout_channels": LAYOUT_CHANNELS}, "steps": 2, "layout_dropout": 0.5}))
    out = tmp_path / "run"
    assert main(["train", "dit", "--preset", "smoke", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    trained = json.loads((out / "final" / "transformer" / "config.json").read_text())
    assert trained["layout_channels"] == LAYOUT_CHANNELS
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("loss" in m for m in metrics)

    planner = _three_small_objects_planner()
    folder = tmp_path / "planner_run" / "planner"
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in planner.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(planner.config.to_dict()))
    root = Path(__file__).resolve().parents[1]

    def ship(target, *extra):
        return subprocess.run([sys.executable, str(root / "scripts" / "ship_model.py"), str(out / "final"),
                               str(tmp_path / target), *extra], capture_output=True, text=True,
                              env={**__import__("os").environ, "PYTHONPATH": str(root / "src")})

    done = ship("shipped", "--planner", str(tmp_path / "planner_run"), "--guidance", "2")
    assert done.returncode == 0, done.stderr
    index = json.loads((tmp_path / "shipped" / "model_index.json").read_text())
    assert index["planner"][1] == "ScenePlanner" and index["defaults"]["guidance"] == 2.0
    missing = ship("none", "--planner", str(tmp_path / "nowhere"))
    assert missing.returncode != 0 and "holds no planner" in missing.stderr
    monkeypatch.setattr(TextEncoder, "from_pretrained", classmethod(lambda cls, *a, **k: te))
    pipe = Pipeline.from_pretrained(tmp_path / "shipped")
    video = pipe.generate("two small shapes", num_frames=5, size="64x64", steps=2, progress=False)
    assert len(video.metadata["plan"]["objects"]) == 3


def test_layout_caption_dropout_trains_clips_on_their_layout_alone(tmp_path, monkeypatch, capsys):
    """With layout_caption_dropout 1 (and no other dropout) every clip keeps its layout and loses its
    caption; with 0 every clip keeps both."""
    import kinema.diffusion.flow as flow
    from kinema.cli import main

    seen = []
    real_loss, real_encode = flow.flow_matching_loss_terms, TextEncoder.encode

    def spy_loss(*args, layout=None, **kwargs):
        seen.append(("layout", layout))
        return real_loss(*args, layout=layout, **kwargs)

    def spy_encode(self, captions, *args, **kwargs):
        seen.append(("captions", list(captions)))
        return real_encode(self, captions, *args, **kwargs)

    monkeypatch.setattr(flow, "flow_matching_loss_terms", spy_loss)
    monkeypatch.setattr(TextEncoder, "encode", spy_encode)

    def run(blind: float) -> tuple[list, list]:
        seen.clear()
        cfg = tmp_path / f"blind{blind}.json"
        cfg.write_text(json.dumps({"model": {"layout_channels": LAYOUT_CHANNELS}, "steps": 2, "caption_dropout": 0,
                                   "layout_dropout": 0, "layout_caption_dropout": blind}))
        assert main(["train", "dit", "--preset", "smoke", "--config", str(cfg),
                     "--out", str(tmp_path / f"run{blind}"), "--quiet"]) == 0
        captions = [c for kind, c in seen if kind == "captions" and len(c) > 1]
        layouts = [x for kind, x in seen if kind == "layout"]
        return captions, layouts

    captions, layouts = run(1.0)
    assert captions and all(c == "" for batch in captions for c in batch)
    assert layouts and all(x is not None and (x.flatten(1).abs().sum(1) > 0).all() for x in layouts)
    captions, layouts = run(0.0)
    assert captions and all(c != "" for batch in captions for c in batch)
    assert all((x.flatten(1).abs().sum(1) > 0).all() for x in layouts)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": {"layout_channels": LAYOUT_CHANNELS}, "layout_caption_dropout": 1.5}))
    capsys.readouterr()
    assert main(["train", "dit", "--preset", "smoke", "--config", str(bad), "--out", str(tmp_path / "bad"),
                 "--quiet"]) != 0
    assert "layout_caption_dropout: must be from 0 to 1" in capsys.readouterr().err


def test_training_grows_a_layout_transformer_to_take_the_outline(tmp_path, capsys, monkeypatch):
    """`init` weights with the 26 base channels train on with an outline: the new channels start at
    zero weights, every layout handed to the loss carries the outline, and a channel count the
    layout cannot make is refused before training."""
    import kinema.diffusion.flow as flow
    from kinema.cli import main
    from safetensors.torch import load_file

    base_cfg = tmp_path / "base.json"
    base_cfg.write_text(json.dumps({"model": {"layout_channels": LAYOUT_CHANNELS}, "steps": 1}))
    assert main(["train", "dit", "--preset", "smoke", "--config", str(base_cfg), "--out", str(tmp_path / "base"),
                 "--quiet"]) == 0
    seen = []
    real_loss = flow.flow_matching_loss_terms

    def spy_loss(*args, layout=None, **kwargs):
        seen.append(layout)
        return real_loss(*args, layout=layout, **kwargs)

    grown_cfg = tmp_path / "grown.json"
    grown_cfg.write_text(json.dumps({"init": str(tmp_path / "base" / "final"), "model": {"layout_channels": 42},
                                     "steps": 1, "layout_dropout": 0, "caption_dropout": 0, "ema_decay": 0.0,
                                     "optim": {"lr": 1e-12, "warmup_steps": 0}}))
    monkeypatch.setattr(flow, "flow_matching_loss_terms", spy_loss)
    assert main(["train", "dit", "--preset", "smoke", "--config", str(grown_cfg), "--vae",
                 str(tmp_path / "base" / "final" / "vae"), "--out", str(tmp_path / "grown"), "--quiet"]) == 0
    layouts = [x for x in seen if x is not None]
    assert layouts and all(x.shape[1] == 42 and x[:, lf.OUTLINE0:].sum() > 0 for x in layouts)
    name = "transformer/diffusion_pytorch_model.safetensors"
    start, tuned = (load_file(str(tmp_path / d / "final" / name)) for d in ("base", "grown"))
    w0, w1 = start["layout_embedder.weight"], tuned["layout_embedder.weight"]
    assert w1.shape == (w0.shape[0], 42 * w0.shape[1] // LAYOUT_CHANNELS)
    assert torch.allclose(w1[:, :w0.shape[1]], w0, atol=1e-6) and w1[:, w0.shape[1]:].abs().max() < 1e-6
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": {"layout_channels": 31}}))
    capsys.readouterr()
    assert main(["train", "dit", "--preset", "smoke", "--config", str(bad), "--out", str(tmp_path / "bad"),
                 "--quiet"]) == 2
    assert "layout_channels 31" in capsys.readouterr().err
