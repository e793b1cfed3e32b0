import json
import re

import numpy as np
import pytest

from kinema.world import SceneSpec, SpecError, caption, canonical_caption, sample_specs
from kinema.world.captions import PATTERNS
from kinema.world.spec import COLORS, SHAPES

DESIGN_EXAMPLE = {"width": 128, "height": 128, "fps": 12, "num_frames": 25, "background": "navy", "seed": 0,
                  "objects": [{"shape": "circle", "color": "red", "size": "large", "motion": "right",
                               "start": [0.25, 0.5], "distance": 0.45}]}


def test_design_example_round_trips_through_json():
    spec = SceneSpec.from_dict(DESIGN_EXAMPLE)
    assert json.loads(spec.to_json()) == DESIGN_EXAMPLE
    assert SceneSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize("patch,field", [
    ({"background": "green"}, "background"),
    ({"width": 16}, "width"),
    ({"num_frames": 0}, "num_frames"),
    ({"fps": -1}, "fps"),
    ({"objects": []}, "objects"),
    ({"colour": "red"}, "colour"),
])
def test_invalid_scene_fields_are_named(patch, field):
    with pytest.raises(SpecError, match=field):
        SceneSpec.from_dict({**DESIGN_EXAMPLE, **patch})


@pytest.mark.parametrize("obj_patch,message", [
    ({"shape": "hexagon"}, "objects\\[0\\].shape: unknown value 'hexagon'; allowed: circle, square, triangle, star"),
    ({"color": "teal"}, "objects\\[0\\].color.*allowed: red, orange"),
    ({"size": "huge"}, "objects\\[0\\].size"),
    ({"motion": "spin"}, "objects\\[0\\].motion"),
    ({"start": [0.95, 0.5]}, "leaves the frame"),
    ({"distance": 0.1}, "distance"),
    ({"start": "middle"}, "start"),
])
def test_invalid_object_fields_name_the_field_and_allowed_values(obj_patch, message):
    obj = {**DESIGN_EXAMPLE["objects"][0], **obj_patch}
    with pytest.raises(SpecError, match=message):
        SceneSpec.from_dict({**DESIGN_EXAMPLE, "objects": [obj]})


def test_overlapping_objects_are_rejected():
    a = {"shape": "square", "color": "red", "start": [0.5, 0.5]}
    b = {"shape": "circle", "color": "blue", "start": [0.55, 0.5]}
    with pytest.raises(SpecError, match="overlap"):
        SceneSpec.from_dict({**DESIGN_EXAMPLE, "objects": [a, b]})


def test_train_split_never_produces_a_heldout_combination():
    specs = sample_specs(1500, seed=3, split="train", num_frames=2)
    assert not any(o.is_heldout() for s in specs for o in s.objects)
    # ...yet every single word still appears in training.
    seen_colors = {o.color for s in specs for o in s.objects}
    seen_shapes = {o.shape for s in specs for o in s.objects}
    assert seen_colors == set(COLORS) and seen_shapes == set(SHAPES)


def test_heldout_split_always_has_a_heldout_object():
    specs = sample_specs(300, seed=4, split="heldout", num_frames=2)
    assert all(any(o.is_heldout() for o in s.objects) for s in specs)


def test_sampled_specs_are_valid_deterministic_and_varied():
    a = sample_specs(50, seed=7, width=224, height=128)
    b = sample_specs(50, seed=7, width=224, height=128)
    assert [s.to_dict() for s in a] == [s.to_dict() for s in b]
    for s in a:
        s.validate()
    counts = {len(s.objects) for s in a}
    assert counts == {1, 2, 3}


def test_captions_use_many_patterns_and_canonical_words():
    specs = sample_specs(200, seed=1)
    rng = np.random.default_rng(0)
    texts = [caption(s, rng) for s in specs]
    assert len(PATTERNS) >= 8
    regexes = [re.compile(".+".join(re.escape(part) for part in re.split(r"\{\w+\}", p))) for p in PATTERNS]
    used = {k for k, rx in enumerate(regexes) for t in texts if rx.fullmatch(t)}
    assert len(used) >= 8
    spec = SceneSpec.from_dict(DESIGN_EXAMPLE)
    assert canonical_caption(spec) == "a large red circle moves right on a navy background"


def test_counts_and_relations_in_captions():
    two = SceneSpec.from_dict({**DESIGN_EXAMPLE, "objects": [
        {"shape": "circle", "color": "red", "size": "small", "start": [0.2, 0.5]},
        {"shape": "circle", "color": "red", "size": "small", "start": [0.8, 0.5]}]})
    assert canonical_caption(two).startswith("two small red circles stay still")
    rel = SceneSpec.from_dict({**DESIGN_EXAMPLE, "objects": [
        {"shape": "circle", "color": "red", "size": "small", "start": [0.2, 0.5]},
        {"shape": "square", "color": "blue", "size": "small", "start": [0.8, 0.5]}]})
    assert "to the left of a small blue square" in canonical_caption(rel)
