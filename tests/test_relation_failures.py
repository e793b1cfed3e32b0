"""benchmarks/relation_failures.py: why relation and binding prompts fail."""

from conftest import load_script

failures = load_script("benchmarks/relation_failures.py")


def _obj(shape, color="red", size="small", motion="left"):
    return {"shape": shape, "color": color, "size": size, "motion": motion}


def _sample(category, asked, found, split="seen", **verdict):
    verdict = {"num_detected": len(found), "binding": False, "relation": False, **verdict}
    return {"category": category, "split": split, "spec": {"objects": asked},
            "detected": [{"color": c, "shape": s} for c, s in found], "verdict": verdict}


ASKED = [_obj("star"), _obj("square", "blue", "large", "still")]
SAMPLES = [
    _sample("relation", ASKED, [("red", "star"), ("blue", "square")], binding=True, relation=True),
    _sample("relation", ASKED, [("red", "star"), ("blue", "square")], binding=True),   # relation alone wrong
    _sample("relation", ASKED, [("red", "circle"), ("blue", "square")]),                # the star drawn round
    _sample("relation", ASKED, [("red", "star")]),                                      # one object only
    _sample("binding", ASKED, [("red", "star"), ("green", "square")]),                  # wrong colour
    _sample("binding", ASKED, [("red", "star"), ("white", "circle")]),                  # nothing of it
]


def test_each_failure_is_put_down_to_its_cause():
    kinds = [failures.failure_kind(s) for s in SAMPLES[:4]]
    assert kinds == ["right", "objects right, relation wrong", "an asked object drawn wrong",
                     "fewer than two objects"]
    assert failures.what_came_instead(SAMPLES[2]) == ["small moving star drawn as a circle"]
    assert failures.what_came_instead(SAMPLES[4]) == ["blue drawn as green"]
    assert failures.what_came_instead(SAMPLES[5]) == ["blue square not drawn"]


def test_report_counts_outcomes_per_category_and_split():
    text = failures.report(SAMPLES)
    assert "## relation, seen: 4 videos" in text and "## binding, seen: 2 videos" in text
    assert "| right | 1 | 25.0% |" in text and "| objects right, relation wrong | 1 | 25.0% |" in text
    assert "| small moving star drawn as a circle | 1 |" in text
    assert "heldout" not in text  # no held-out samples given
