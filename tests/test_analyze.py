"""Calibration of the analyzer: on rendered ground truth, after the MP4 round trip, it must be
right at least 99% of the time per attribute (DESIGN §3)."""

from collections import Counter

import numpy as np
import pytest

from kinema.video import Video
from kinema.world import SceneSpec, render_video, sample_specs
from kinema.world.analyze import analyze_video
from kinema.world.captions import relation_between

SIZES = [(128, 128), (224, 128), (128, 224), (304, 128)]  # 1:1, 16:9-like, 9:16, 2.39:1-like


def _match(spec, facts):
    """Pair each spec object with the analyzed object nearest its first-frame centre."""
    pairs, used = [], set()
    for o in spec.objects:
        cx, cy = spec.center(o, 0)
        cands = [j for j in range(len(facts["objects"])) if j not in used and facts["objects"][j]["track"][0]]
        j = min(cands, key=lambda j: np.hypot(facts["objects"][j]["track"][0][0] - cx,
                                               facts["objects"][j]["track"][0][1] - cy))
        used.add(j)
        pairs.append((o, facts["objects"][j], j))
    return pairs


def test_calibration_after_mp4_round_trip(tmp_path):
    ok, total = Counter(), Counter()
    for i in range(320):
        w, h = SIZES[i % 4]
        split = "heldout" if i % 3 == 0 else "train"
        spec = sample_specs(1, seed=5000 + i, split=split, width=w, height=h, num_frames=9)[0]
        path = render_video(spec).save(tmp_path / "clip.mp4")
        facts = analyze_video(Video.read(path))
        total["background"] += 1
        ok["background"] += facts["background"] == spec.background
        total["count"] += 1
        ok["count"] += facts["count"] == len(spec.objects)
        if facts["count"] != len(spec.objects):
            continue
        pairs = _match(spec, facts)
        for o, fo, _ in pairs:
            for attr in ("color", "shape", "size", "motion"):
                total[attr] += 1
                ok[attr] += fo[attr] == getattr(o, attr)
            total["track"] += 1
            ok["track"] += all(
                p is not None and abs(p[0] - spec.center(o, k)[0]) < 0.03 and abs(p[1] - spec.center(o, k)[1]) < 0.03
                for k, p in enumerate(fo["track"]))
        index = {id(o): j for o, _, j in pairs}
        for a in range(len(spec.objects)):
            for b in range(len(spec.objects)):
                rel = relation_between(spec, a, b) if a != b else None
                if rel is None:
                    continue
                total["relation"] += 1
                ok["relation"] += {"subject": index[id(spec.objects[a])], "relation": rel,
                                   "object": index[id(spec.objects[b])]} in facts["relations"]
    rates = {k: ok[k] / total[k] for k in total}
    assert total["color"] >= 300
    assert all(r >= 0.99 for r in rates.values()), rates


HAND_WRITTEN = [
    # (spec, expected objects as (size, color, shape, motion)) — written from DESIGN §3 by hand
    ({"width": 128, "height": 128, "fps": 12, "num_frames": 25, "background": "navy",
      "objects": [{"shape": "circle", "color": "red", "size": "large", "motion": "right", "start": [0.25, 0.5]}]},
     [("large", "red", "circle", "right")]),
    ({"width": 224, "height": 128, "fps": 8, "num_frames": 17, "background": "sand",
      "objects": [{"shape": "star", "color": "yellow", "size": "small", "motion": "up", "start": [0.2, 0.7]},
                  {"shape": "triangle", "color": "green", "size": "large", "motion": "still", "start": [0.7, 0.5]}]},
     [("small", "yellow", "star", "up"), ("large", "green", "triangle", "still")]),
    ({"width": 128, "height": 224, "fps": 24, "num_frames": 49, "background": "gray",
      "objects": [{"shape": "square", "color": "pink", "size": "small", "motion": "down", "start": [0.3, 0.2]},
                  {"shape": "square", "color": "pink", "size": "small", "motion": "down", "start": [0.75, 0.2]},
                  {"shape": "circle", "color": "blue", "size": "small", "motion": "left", "start": [0.8, 0.85],
                   "distance": 0.5}]},
     [("small", "pink", "square", "down"), ("small", "pink", "square", "down"), ("small", "blue", "circle", "left")]),
    ({"width": 306, "height": 128, "fps": 12, "num_frames": 1, "background": "black",
      "objects": [{"shape": "star", "color": "white", "size": "large", "start": [0.5, 0.5]}]},
     [("large", "white", "star", "still")]),
]


@pytest.mark.parametrize("spec_dict,expected", HAND_WRITTEN)
def test_hand_written_specs_are_read_back(tmp_path, spec_dict, expected):
    spec = SceneSpec.from_dict(spec_dict)
    facts = analyze_video(Video.read(render_video(spec).save(tmp_path / "c.mp4")))
    got = sorted((o["size"], o["color"], o["shape"], o["motion"]) for o in facts["objects"])
    assert got == sorted(expected)
    assert facts["background"] == spec.background
    assert facts["num_frames"] == spec.num_frames
    assert all(len(o["track"]) == spec.num_frames for o in facts["objects"])


def test_relations_and_groups():
    spec = SceneSpec.from_dict({"width": 128, "height": 128, "background": "black", "num_frames": 5, "objects": [
        {"shape": "circle", "color": "red", "size": "small", "start": [0.5, 0.2]},
        {"shape": "square", "color": "blue", "size": "small", "start": [0.5, 0.8]}]})
    facts = analyze_video(render_video(spec))
    red = next(i for i, o in enumerate(facts["objects"]) if o["color"] == "red")
    blue = 1 - red
    assert {"subject": red, "relation": "above", "object": blue} in facts["relations"]
    assert {"subject": blue, "relation": "below", "object": red} in facts["relations"]
    assert sorted((g["color"], g["count"]) for g in facts["groups"]) == [("blue", 1), ("red", 1)]


def test_vanishing_object_leaves_nulls_in_its_track():
    spec = SceneSpec.from_dict({"width": 128, "height": 128, "background": "gray", "num_frames": 10, "objects": [
        {"shape": "circle", "color": "orange", "size": "large", "start": [0.5, 0.5]}]})
    frames = render_video(spec).frames.copy()
    frames[6:] = frames[0, 0, 0]  # the object disappears after frame 5
    facts = analyze_video(frames)
    track = facts["objects"][0]["track"]
    assert all(p is not None for p in track[:6]) and all(p is None for p in track[6:])
