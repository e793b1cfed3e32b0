"""benchmarks/relation_placement.py judges where the two asked colours were placed."""

import pytest
from conftest import load_script

from kinema.errors import KinemaError
from kinema.eval.prompts import make_item


def _module():
    return load_script("benchmarks/relation_placement.py")


def _record(item, placed: dict[str, tuple[float, float]], split="seen") -> dict:
    return {"category": "relation", "split": split, "spec": item.spec.to_dict(),
            "detected": [{"color": c, "frames_seen": 24, "first_frame": 0, "first_xy": list(xy)}
                         for c, xy in placed.items()]}


def test_placement_asked_reversed_unclear_and_missing():
    mod = _module()
    item = make_item("relation", "seen", 0)
    a, b = item.spec.objects
    spot_a, spot_b = item.spec.center(a, 0), item.spec.center(b, 0)
    assert mod.placement(_record(item, {a.color: spot_a, b.color: spot_b})) == "asked"
    assert mod.placement(_record(item, {a.color: spot_b, b.color: spot_a})) == "reversed"
    assert mod.placement(_record(item, {a.color: (0.5, 0.5), b.color: (0.51, 0.5)})) == "unclear"
    assert mod.placement(_record(item, {a.color: spot_a})) is None
    counts = mod.tally([_record(item, {a.color: spot_a, b.color: spot_b}),
                        _record(item, {a.color: spot_b, b.color: spot_a}),
                        _record(item, {b.color: spot_b})])
    assert counts == {"seen": {"prompts": 3, "both_colours": 2, "asked": 1, "reversed": 1}}


def test_old_samples_without_positions_are_named():
    mod = _module()
    item = make_item("relation", "seen", 0)
    record = _record(item, {o.color: (0.5, 0.5) for o in item.spec.objects})
    for d in record["detected"]:
        del d["first_xy"]
    with pytest.raises(KinemaError, match="first_xy"):
        mod.placement(record)


def test_tally_by_axis_keeps_left_right_apart_from_above_below():
    mod = _module()
    items = [make_item("relation", "seen", i) for i in range(40)]
    axes = {mod.asked_axis({"spec": it.spec.to_dict()}) for it in items}
    assert axes == {"left/right", "above/below"}
    records = []
    for it in items:
        a, b = it.spec.objects
        records.append(_record(it, {a.color: it.spec.center(a, 0), b.color: it.spec.center(b, 0)}))
    by_axis = mod.tally_by_axis(records)
    assert set(by_axis) == {("seen", "left/right"), ("seen", "above/below")}
    assert sum(c["prompts"] for c in by_axis.values()) == 40
    for (split, axis), c in by_axis.items():
        assert c["asked"] == c["both_colours"] == c["prompts"]
        assert c["prompts"] == sum(mod.asked_axis(r) == axis for r in records)
