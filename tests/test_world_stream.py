import torch
from torch.utils.data import DataLoader

from kinema.data.world_stream import WorldStream
from kinema.world import SceneSpec


def _take(ds, n, workers=0):
    loader = DataLoader(ds, batch_size=None, num_workers=workers)
    out = []
    for item in loader:
        out.append(item)
        if len(out) == n:
            break
    return out


def test_stream_yields_video_caption_pairs_in_range():
    items = _take(WorldStream(seed=1, buckets=[(64, 32, 5)]), 3)
    for it in items:
        assert it["video"].shape == (3, 5, 32, 64)
        assert -1.0 <= it["video"].min() and it["video"].max() <= 1.0
        assert isinstance(it["caption"], str) and it["caption"]
        assert not any(SceneSpec.from_dict(it["spec"]).objects[k].is_heldout()
                       for k in range(len(it["spec"]["objects"])))


def test_workers_and_ranks_draw_different_reproducible_streams():
    a = [it["caption"] for it in _take(WorldStream(seed=2, buckets=[(32, 32, 1)]), 6, workers=2)]
    b = [it["caption"] for it in _take(WorldStream(seed=2, buckets=[(32, 32, 1)]), 6, workers=2)]
    assert a == b  # reproducible
    # two workers interleave: consecutive items come from different workers and never repeat each other
    assert a[0::2] != a[1::2]
    r0 = [it["spec"] for it in _take(WorldStream(seed=2, buckets=[(32, 32, 1)], rank=0, world_size=2), 4)]
    r1 = [it["spec"] for it in _take(WorldStream(seed=2, buckets=[(32, 32, 1)], rank=1, world_size=2), 4)]
    assert r0 != r1


def test_batched_buckets_share_one_shape():
    items = _take(WorldStream(seed=3, buckets=[(32, 32, 5), (48, 32, 1)], batch_size=3), 4)
    for it in items:
        assert it["video"].ndim == 5 and it["video"].shape[0] == 3
        assert it["video"].shape[1:] in (torch.Size([3, 5, 32, 32]), torch.Size([3, 1, 32, 48]))


def test_uint8_stream_carries_the_same_frames():
    f = _take(WorldStream(seed=4, buckets=[(32, 32, 5)]), 1)[0]["video"]
    u = _take(WorldStream(seed=4, buckets=[(32, 32, 5)], uint8=True), 1)[0]["video"]
    assert u.dtype == torch.uint8
    assert torch.allclose(u.float() / 127.5 - 1.0, f)


def test_each_batched_clip_is_its_spec_rendered_channel_first():
    from kinema.world import render

    for uint8 in (True, False):
        item = _take(WorldStream(seed=5, buckets=[(48, 32, 5)], batch_size=3, uint8=uint8), 1)[0]
        for video, spec in zip(item["video"], item["spec"]):
            frames = torch.from_numpy(render(SceneSpec.from_dict(spec))).permute(3, 0, 1, 2)
            assert torch.equal(video, frames if uint8 else frames.float() / 127.5 - 1.0)


def test_size_weights_choose_how_large_objects_are_and_keep_the_rest_of_the_draw():
    small_only = _take(WorldStream(seed=6, buckets=[(48, 32, 1)], size_weights=[1, 0]), 12)
    sizes = [o["size"] for it in small_only for o in it["spec"]["objects"]]
    assert set(sizes) == {"small"} and len(sizes) > 12
    mostly_large = _take(WorldStream(seed=6, buckets=[(48, 32, 1)], size_weights=[1, 9]), 40)
    large = [o["size"] == "large" for it in mostly_large for o in it["spec"]["objects"]]
    assert sum(large) / len(large) > 0.75
    default = _take(WorldStream(seed=6, buckets=[(48, 32, 1)]), 12)
    even = [o["size"] == "large" for it in _take(WorldStream(seed=6, buckets=[(48, 32, 1)]), 60)
            for o in it["spec"]["objects"]]
    assert 0.3 < sum(even) / len(even) < 0.7
    empty = _take(WorldStream(seed=6, buckets=[(48, 32, 1)], size_weights=[]), 12)
    assert [it["spec"] for it in default] == [it["spec"] for it in empty]  # empty: the default, draw for draw


def test_shape_weights_choose_which_shapes_are_drawn_and_keep_the_default_draw():
    stars_only = _take(WorldStream(seed=6, buckets=[(48, 32, 1)], shape_weights=[0, 0, 0, 1]), 12)
    shapes = [o["shape"] for it in stars_only for o in it["spec"]["objects"]]
    assert set(shapes) == {"star"} and len(shapes) > 12
    star_heavy = _take(WorldStream(seed=6, buckets=[(48, 32, 1)], shape_weights=[1, 1, 1, 3]), 60)
    stars = [o["shape"] == "star" for it in star_heavy for o in it["spec"]["objects"]]
    assert 0.35 < sum(stars) / len(stars) < 0.75  # a half expected, against a quarter by default
    default = _take(WorldStream(seed=6, buckets=[(48, 32, 1)]), 12)
    empty = _take(WorldStream(seed=6, buckets=[(48, 32, 1)], shape_weights=[]), 12)
    assert [it["spec"] for it in default] == [it["spec"] for it in empty]  # empty: the default, draw for draw
    heldout = _take(WorldStream(split="heldout", seed=6, buckets=[(48, 32, 1)], shape_weights=[0, 0, 0, 1]), 8)
    for it in heldout:  # still a held-out scene, now of stars
        spec = SceneSpec.from_dict(it["spec"])
        assert any(o.is_heldout() for o in spec.objects) and {o.shape for o in spec.objects} == {"star"}


def test_window_of_frames_cuts_short_clips_from_longer_scenes_at_their_speed():
    import numpy as np
    import pytest

    from kinema.world.render import render

    items = _take(WorldStream(seed=8, buckets=[(64, 48, 5, 2), (64, 48, 1, 2)], uint8=True, window_of_frames=25), 6)
    clips = [(v, s) for it in items for v, s in zip(it["video"], it["spec"]) if v.shape[1] == 5]
    stills = [s for it in items for v, s in zip(it["video"], it["spec"]) if v.shape[1] == 1]
    assert clips and stills
    starts = set()
    for video, spec in clips:
        spec = dict(spec)
        start = spec.pop("window_start")
        scene = SceneSpec.from_dict(spec)
        assert scene.num_frames == 25 and 0 <= start <= 20
        # five consecutive frames of the 25-frame scene: its objects move at that scene's speed
        np.testing.assert_array_equal(video.numpy().transpose(1, 2, 3, 0), render(scene)[start:start + 5])
        starts.add(start)
    assert len(starts) > 1  # windows at different places in their scenes
    assert all(s["num_frames"] == 1 and "window_start" not in s for s in stills)  # a still is its own scene
    plain = _take(WorldStream(seed=8, buckets=[(64, 48, 5, 2)], uint8=True), 2)
    assert all(s["num_frames"] == 5 and "window_start" not in s for it in plain for s in it["spec"])
    for bad in (1, 0, 2.5):
        with pytest.raises(ValueError, match="window_of_frames"):
            WorldStream(window_of_frames=bad)
    with pytest.raises(ValueError, match="window_of_frames"):
        WorldStream(window_of_frames=25, mirror_pairs=True, batch_size=2)


def test_object_weights_choose_how_many_objects_a_scene_has():
    two_only = _take(WorldStream(seed=6, buckets=[(48, 32, 1)], count_weights=[0, 1, 0]), 12)
    assert {len(it["spec"]["objects"]) for it in two_only} == {2}
    default = _take(WorldStream(seed=6, buckets=[(48, 32, 1)]), 12)
    same_mix = _take(WorldStream(seed=6, buckets=[(48, 32, 1)], count_weights=[0.45, 0.35, 0.20]), 12)
    assert [it["spec"] for it in default] == [it["spec"] for it in same_mix]  # the default mix, draw for draw


def test_relation_captions_can_be_left_out():
    """relation_captions=False describes each of two objects by itself; the scenes are the same."""
    relation_words = ("left of", "right of", "above", "below")
    on = _take(WorldStream(seed=6, buckets=[(64, 64, 1)], count_weights=[0, 1, 0]), 40)
    off = _take(WorldStream(seed=6, buckets=[(64, 64, 1)], count_weights=[0, 1, 0], relation_captions=False), 40)
    assert [it["spec"] for it in on] == [it["spec"] for it in off]
    assert sum(any(w in it["caption"] for w in relation_words) for it in on) >= 10
    assert not any(any(w in it["caption"] for w in relation_words) for it in off)
    for it in off:  # both objects are still named
        for obj in it["spec"]["objects"]:
            assert obj["color"] in it["caption"] and obj["shape"] in it["caption"]


def test_group_probability_makes_scenes_of_one_identical_group():
    """group_probability 1: every scene of two or more objects is one group of the same object, captioned
    with its count; 0 (the default) keeps the default draw, scene for scene."""
    groups = _take(WorldStream(seed=7, buckets=[(64, 64, 1)], count_weights=[0, 1, 1], group_probability=1.0), 12)
    for it in groups:
        objects = it["spec"]["objects"]
        assert len(objects) in (2, 3)
        assert len({(o["shape"], o["color"], o["size"], o["motion"]) for o in objects}) == 1
        assert ("two " if len(objects) == 2 else "three ") in it["caption"].lower()
    default = _take(WorldStream(seed=7, buckets=[(64, 64, 1)], count_weights=[0, 1, 1]), 12)
    zero = _take(WorldStream(seed=7, buckets=[(64, 64, 1)], count_weights=[0, 1, 1], group_probability=0.0), 12)
    assert [it["spec"] for it in default] == [it["spec"] for it in zero]
    distinct = sum(len({o["color"] for o in it["spec"]["objects"]}) > 1 for it in default)
    assert distinct >= 6  # without groups most scenes hold objects of different colours


def test_group_probability_outside_zero_to_one_is_refused():
    import pytest

    from kinema.world.spec import SpecError

    for bad in (-0.1, 1.5, "half", True):
        with pytest.raises(SpecError, match="group probability"):
            WorldStream(seed=1, group_probability=bad)


def test_weights_scope_distinct_weighs_only_scenes_of_different_objects():
    import pytest

    from kinema.world.sample import sample_specs
    from kinema.world.spec import SpecError

    kwargs = dict(shape_weights=[0, 0, 0, 1], size_weights=[1, 0], group_probability=0.4)

    def key(o):
        return (o.shape, o.color, o.size, o.motion)

    specs = sample_specs(300, seed=3, weights_scope="distinct", **kwargs)
    single = [s.objects[0] for s in specs if len(s.objects) == 1]
    groups = [s.objects[0] for s in specs if len(s.objects) > 1
              and all(key(o) == key(s.objects[0]) for o in s.objects)]
    mixed = [o for s in specs if len(s.objects) > 1 and len({key(o) for o in s.objects}) > 1 for o in s.objects]
    assert len(single) > 50 and len(groups) > 20 and len(mixed) > 50
    assert {(o.shape, o.size) for o in mixed} == {("star", "small")}  # weighted: small stars only
    for kept_even in (single, groups):  # what count prompts ask for keeps every shape and size
        assert {o.shape for o in kept_even} == {"circle", "square", "triangle", "star"}
        assert {o.size for o in kept_even} == {"small", "large"}
    everywhere = sample_specs(100, seed=3, weights_scope="all", **kwargs)
    assert {(o.shape, o.size) for s in everywhere for o in s.objects} == {("star", "small")}
    assert everywhere == sample_specs(100, seed=3, **kwargs)  # "all" is the default, draw for draw
    with pytest.raises(SpecError, match="weights scope: unknown value 'groups'"):
        sample_specs(1, seed=3, weights_scope="groups")
    stream = _take(WorldStream(seed=6, buckets=[(48, 32, 1)], weights_scope="distinct", **kwargs), 40)
    objects = [it["spec"]["objects"] for it in stream]
    distinct = [o for objs in objects if len({(o["shape"], o["color"], o["size"], o["motion"]) for o in objs}) > 1
                for o in objs]
    assert distinct and all(o["shape"] == "star" for o in distinct)
    assert any(o["shape"] != "star" for objs in objects for o in objs)
