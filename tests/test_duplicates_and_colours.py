"""benchmarks/duplicates_and_colours.py counts the failure modes the README quotes."""

from conftest import load_script


def _module():
    return load_script("benchmarks/duplicates_and_colours.py")


def _row(asked: list[str], shown: list[str]) -> dict:
    return {"spec": {"objects": [{"color": c} for c in asked]},
            "verdict": {"num_detected": len(shown)}, "detected": [{"color": c} for c in shown]}


def test_counts_duplicates_and_two_colour_prompts():
    rows = [
        _row(["red"], ["red"]),                  # right
        _row(["red"], ["red", "red"]),           # a duplicate of the asked colour
        _row(["red"], ["red", "blue"]),          # an extra of another colour
        _row(["red", "blue"], ["red", "red"]),   # both drawn in the first colour
        _row(["red", "blue"], ["blue", "red"]),  # both colours shown
        _row(["red", "red"], ["red", "red"]),    # one colour asked: not a two-colour prompt
    ]
    assert _module().counts(rows) == {"one_object": 3, "shown_more": 2, "extra_same_colour": 1,
                                      "two_colours": 2, "both_colours_shown": 1}
