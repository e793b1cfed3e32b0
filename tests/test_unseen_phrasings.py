"""benchmarks/unseen_phrasings.py: benchmark scenes asked in sentence structures the world never
writes, and the scene planner's reading of each judged against what was asked."""

import sys

import pytest

from conftest import load_script
from kinema.eval.prompts import benchmark_items
from kinema.layout.planner import Plan
from kinema.world.captions import caption_relation
from kinema.world.spec import ObjectSpec

probe = load_script("benchmarks/unseen_phrasings.py")


def _phrased(item, phrase):
    rel = caption_relation(item.spec) if item.category == "relation" else None
    return phrase(item.spec, rel)


@pytest.mark.parametrize("name", list(probe.PHRASINGS))
def test_each_phrasing_names_what_it_says_it_asks_in_that_order(name):
    for item in benchmark_items(6, categories=["single", "count", "relation", "binding"]):
        text, asked = _phrased(item, probe.PHRASINGS[name])
        assert asked.background == item.spec.background and asked.background in text
        pos = 0  # each asked object's colour, in the asked order (two-object scenes differ in colour)
        for colour, shape, size, motion in asked.objects:
            found = text.find(colour, pos)
            assert found >= 0 and shape in text and size in text, (name, text, asked)
            pos = found if item.category == "count" else found + 1
        assert text not in (item.prompt,)  # never the benchmark's own phrasing


def test_the_second_named_first_reverses_the_order_and_the_relation():
    item = next(it for it in benchmark_items(4, categories=["relation"]) if caption_relation(it.spec) == "left of")
    text, asked = _phrased(item, probe.PHRASINGS["the second named first (relation)"])
    a, b = item.spec.objects
    assert asked.objects == [(b.color, b.shape, b.size, b.motion), (a.color, a.shape, a.size, a.motion)]
    assert asked.relation == "right of" and text.endswith("left of it")


def test_judge_tells_right_unsure_and_wrong():
    asked = probe.Asked([("red", "circle", "large", "right"), ("blue", "square", "small", "up")], "left of", "navy")
    objects = [ObjectSpec("circle", "red", "large", "right"), ObjectSpec("square", "blue", "small", "up")]
    assert probe.judge(Plan(objects, "navy", "left of", 0.9), asked) == "right"
    assert probe.judge(None, asked) == "unsure"
    assert probe.judge(Plan(objects[::-1], "navy", "left of", 0.9), asked) == "wrong"
    assert probe.judge(Plan(objects, "navy", "right of", 0.9), asked) == "wrong"
    assert probe.judge(Plan(objects, "sand", "left of", 0.9), asked) == "wrong"


def test_the_shipped_planner_reads_the_benchmarks_own_phrasing(tmp_path, monkeypatch, capsys):
    out = tmp_path / "phrasings.md"
    monkeypatch.setattr(sys, "argv", ["unseen_phrasings.py", "--n", "2", "--categories", "relation,binding",
                                      "-o", str(out)])
    probe.main()
    text = out.read_text()
    assert "| the benchmark's own | seen | 4 | 100.0% | 0.0% | 0.0% |" in text
    assert "| the second named first (relation) | heldout | 2 |" in text
    assert text in capsys.readouterr().out
