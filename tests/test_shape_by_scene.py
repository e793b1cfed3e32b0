"""benchmarks/shape_by_scene.py: shape right by one or two asked objects, size and motion."""

from conftest import load_script

scene = load_script("benchmarks/shape_by_scene.py")


def _obj(shape, color, size="large", motion="left"):
    return {"shape": shape, "color": color, "size": size, "motion": motion}


def _row(category, asked, detected):
    return {"category": category, "spec": {"objects": asked},
            "detected": [{**d, "frames_seen": n} for d, n in detected]}


ROWS = [
    _row("single", [_obj("star", "red")], [(_obj("star", "red"), 24)]),
    # the more persistent red object is the one matched: a circle, wrong
    _row("single", [_obj("square", "red", "small")], [(_obj("square", "red"), 3), (_obj("circle", "red"), 20)]),
    _row("binding", [_obj("star", "red"), _obj("square", "blue", motion="still")],
         [(_obj("circle", "red"), 24), (_obj("square", "blue"), 24)]),
    # blue is not shown: only the red object counts
    _row("relation", [_obj("triangle", "red"), _obj("circle", "blue")], [(_obj("triangle", "red"), 24)]),
    _row("count", [_obj("star", "red")] * 2, [(_obj("star", "red"), 24)]),  # not a shape group
]


def test_tally_by_scene_size_and_motion():
    one = scene.tally(scene.matched_shapes(ROWS, ("single",)))
    assert one[("all", "all")] == (1, 2)
    assert one[("large", "moving")] == (1, 1) and one[("small", "moving")] == (0, 1)
    two = scene.tally(scene.matched_shapes(ROWS, ("binding", "relation")))
    assert two[("all", "all")] == (2, 3)
    assert two[("large", "still")] == (1, 1)
    assert two[("large", "moving")] == (1, 2)


def test_confusion_and_report_for_two_objects():
    pairs = scene.matched_shapes(ROWS, ("binding", "relation"))
    matrix = scene.confusion(pairs)
    assert matrix[("star", "circle")] == 1 and matrix[("square", "square")] == 1
    assert matrix[("triangle", "triangle")] == 1 and sum(matrix.values()) == 3
    text = scene.report(ROWS)
    assert "| two objects | all | all | 66.7%" in text
    assert "| star | 1 | 0 | 0 |" in text
