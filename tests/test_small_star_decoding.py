"""benchmarks/small_star_decoding.py: its scenes, its prompts and its reading of a video."""

import numpy as np

from conftest import load_script

stars = load_script("benchmarks/small_star_decoding.py")


def test_clips_are_small_objects_of_every_shape_in_turn():
    specs = stars.small_object_clips(8, seed=1)
    assert [s.objects[0].shape for s in specs[:4]] == ["circle", "square", "triangle", "star"]
    assert all(s.objects[0].size == "small" and s.num_frames == 9 for s in specs)
    assert [s.to_dict() for s in specs] == [s.to_dict() for s in stars.small_object_clips(8, seed=1)]


def test_star_items_ask_for_a_small_star():
    items = stars.star_items(6)
    assert len(items) == 6 and {it.category for it in items} <= {"single", "binding", "relation"}
    assert all(any(o.shape == "star" and o.size == "small" for o in it.spec.objects) for it in items)


def test_an_exact_rendering_shows_its_small_star_and_a_blank_video_does_not():
    from kinema.world import render

    item = stars.star_items(1)[0]
    frames = render(item.spec)
    seen = stars.judge_frames(item, frames)
    wanted = sum(o.shape == "star" and o.size == "small" for o in item.spec.objects)
    assert seen["stars"] == (wanted, wanted) and seen["everything"]
    blank = np.repeat(frames[:, :1, :1], frames.shape[1], axis=1).repeat(frames.shape[2], axis=2)
    assert stars.judge_frames(item, blank)["stars"] == (0, wanted)
    assert "small stars shown as stars 1/2" in stars._summary([seen | {"stars": (1, 2)}])
