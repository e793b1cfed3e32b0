"""benchmarks/verdicts_by_star.py: verdicts split by the stars a prompt asks for."""

from conftest import load_script

stars = load_script("benchmarks/verdicts_by_star.py")


def _obj(shape, size="large"):
    return {"shape": shape, "color": "red", "size": size, "motion": "left"}


def _row(category, split, objects, **verdict):
    return {"category": category, "split": split, "spec": {"objects": objects}, "verdict": verdict}


ROWS = [
    _row("binding", "seen", [_obj("circle"), _obj("square")], binding=True, everything=True),
    _row("binding", "seen", [_obj("circle"), _obj("square")], binding=False, everything=False),
    _row("binding", "seen", [_obj("star"), _obj("square")], binding=True, everything=False),
    _row("binding", "seen", [_obj("star"), _obj("star", "small")], binding=False, everything=False),
    _row("binding", "heldout", [_obj("triangle", "small"), _obj("star", "small")], binding=True),
    _row("single", "seen", [_obj("star", "small")], shape=False, everything=False),
]


def test_prompts_are_grouped_by_their_stars():
    assert stars.star_group({"objects": [_obj("circle", "small")]}) == "no star"
    assert stars.star_group({"objects": [_obj("star"), _obj("circle", "small")]}) == "large stars only"
    assert stars.star_group({"objects": [_obj("star"), _obj("star", "small")]}) == "a small star"


def test_tally_counts_each_group_for_one_category_and_split():
    t = stars.tally(ROWS, "binding", "seen", "binding")
    assert t == {"no star": (1, 2), "large stars only": (1, 1), "a small star": (0, 1)}
    assert stars.tally(ROWS, "binding", "heldout", "binding")["a small star"] == (1, 1)
    assert stars.tally(ROWS, "binding", "seen", "everything")["large stars only"] == (0, 1)


def test_report_gives_the_whole_rate_and_the_rate_without_stars():
    text = stars.report(ROWS)
    assert "| binding | seen | binding | 50.0%" in text and "| 50.0% (15.0–85.0), 2/4 | 50.0% |" in text
    assert "| single | seen | shape | – | – | 0.0%" in text
    assert "relation" not in text  # no relation rows: nothing printed for it
