"""benchmarks/relation_stills.py: its prompts, its arguments and the lines it prints."""

import pytest
from conftest import load_script


def _module():
    return load_script("benchmarks/relation_stills.py")


def test_items_are_the_benchmarks_relation_prompts_as_one_frame_scenes():
    from kinema.eval.prompts import make_item

    items = _module().relation_items(3, 2)
    assert [(it.split, it.index) for it in items] == [("seen", 3), ("seen", 4), ("heldout", 3), ("heldout", 4)]
    for it in items:
        video_item = make_item("relation", it.split, it.index)
        assert it.spec.num_frames == 1 and it.prompt == video_item.prompt
        assert it.spec.objects == video_item.spec.objects
        assert [it.spec.center(o, 0) for o in it.spec.objects] == [
            video_item.spec.center(o, 0) for o in video_item.spec.objects]


def test_pairs_are_parsed_in_order_and_bad_ones_named():
    mod = _module()
    assert list(mod.parse_pairs(["b=x", "a=y"], "--model")) == ["b", "a"]
    assert mod.parse_pairs(["t=5"], "--guidance", float) == {"t": 5.0}
    for words, named in ((["a"], "NAME=VALUE"), (["a=1", "a=2"], "given twice"), (["a=x"], "not valid")):
        with pytest.raises(ValueError, match=named):
            mod.parse_pairs(words, "--guidance", float)


def test_summary_counts_verdicts_and_placements_per_split():
    mod = _module()
    item = mod.relation_items(0, 1)[0]
    a, b = item.spec.objects
    spot_a, spot_b = item.spec.center(a, 0), item.spec.center(b, 0)

    def record(xy_a, xy_b, right):
        return {"category": "relation", "split": "seen", "spec": item.spec.to_dict(),
                "verdict": {"relation": right, "binding": not right},
                "detected": [{"color": a.color, "frames_seen": 1, "first_frame": 0, "first_xy": list(xy_a)},
                             {"color": b.color, "frames_seen": 1, "first_frame": 0, "first_xy": list(xy_b)}]}

    lines = mod.summary_lines([record(spot_a, spot_b, True), record(spot_a, spot_b, False),
                               record(spot_b, spot_a, False)])
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith("  seen: 3 stills; relation right 1 (33.3%") and "binding right 2 (66.7%" in line
    assert "asked 2 (66.7%" in line and "reversed 1 (33.3%" in line and "asked of asked or reversed 2 (66.7%" in line
