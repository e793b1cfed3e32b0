"""benchmarks/two_object_binding.py finds each planned object where the plan put it and reads its
colour and shape as its own, the other's or a third."""

import gzip
import json

from conftest import load_script


def _module():
    return load_script("benchmarks/two_object_binding.py")


def _obj(color: str, shape: str) -> dict:
    return {"color": color, "shape": shape, "size": "small", "motion": "still"}


def _sample(planned: list[dict], starts: list[list[float]], detected: list[tuple[dict, list[float], int]]) -> dict:
    return {"plan": {"objects": planned, "starts": starts},
            "detected": [{**o, "first_xy": xy, "first_frame": f} for o, xy, f in detected]}


def test_reads_own_swapped_third_and_missing_objects(tmp_path):
    red_circle, blue_star = _obj("red", "circle"), _obj("blue", "star")
    starts = [[0.2, 0.2], [0.8, 0.8]]
    samples = [
        # both right, detected in the other order
        _sample([red_circle, blue_star], starts, [(blue_star, [0.78, 0.8], 0), (red_circle, [0.2, 0.25], 0)]),
        # swapped: each drawn as the other
        _sample([red_circle, blue_star], starts, [(blue_star, [0.2, 0.2], 0), (red_circle, [0.8, 0.8], 0)]),
        # the first in a third colour and shape; the second missing (found far away, or only late)
        _sample([red_circle, blue_star], starts, [(_obj("green", "square"), [0.2, 0.2], 1),
                                                  (blue_star, [0.5, 0.5], 0), (blue_star, [0.8, 0.8], 9)]),
        # same colour twice: its colour is not counted, its shape is
        _sample([red_circle, _obj("red", "star")], starts, [(red_circle, [0.2, 0.2], 0), (red_circle, [0.8, 0.8], 0)]),
        # one planned object: not a two-object plan
        _sample([red_circle], starts[:1], [(red_circle, [0.2, 0.2], 0)]),
    ]
    counts = _module().binding_counts(samples)
    assert counts == {"videos": 4, "objects": 8, "missing": 1, "both_own": 1,
                      "colour": {"own": 2, "other's": 2, "third": 1},
                      "shape": {"own": 3, "other's": 3, "third": 1}}
    path = tmp_path / "samples.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(s) + "\n" for s in samples)
    assert _module().binding_counts(_module().read_samples(tmp_path)) == counts
    assert "| colour: own | 40.0% |" in _module().table({"run": counts})
