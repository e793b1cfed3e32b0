"""Captions in people's sentence structures, for the scene planner only: they name what the
planner's targets say, in the same order, and leave the world's caption stream alone when unused."""

import re

import numpy as np
import pytest

from kinema.cli import main
from kinema.train.planner import caption_set, plan_targets
from kinema.world.captions import RELATION_PHRASES, canonical_caption, caption, caption_relation, group_objects
from kinema.world.people_captions import INVERSE, people_caption
from kinema.world.sample import sample_spec


def _named_in_order(text: str, nouns: list[str]) -> bool:
    """Whether `nouns` occur in `text` one after another, in this order."""
    pos = 0
    for noun in nouns:
        found = re.search(rf"\b{noun}s?\b", text[pos:])
        if not found:
            return False
        pos += found.end()
    return True


def test_people_captions_name_every_object_in_the_targets_order_with_the_relation_and_background():
    rng = np.random.default_rng(0)
    structures = set()
    for _ in range(400):
        spec = sample_spec(rng, num_frames=25)
        text = people_caption(spec, rng)
        groups = group_objects(spec)
        # named in the order the planner's slots are trained on
        assert _named_in_order(text, [f"{o.color} {o.shape}" for o, _ in groups]), text
        assert spec.background in text
        targets = plan_targets(spec)
        assert sum(targets["present"]) == len(spec.objects)
        rel = caption_relation(spec)
        if rel is not None:
            said = [p for p in RELATION_PHRASES[rel] if f" {p} " in text]
            back = [p for p in RELATION_PHRASES[INVERSE[rel]] if f"{p} it" in text]
            assert said or back, (rel, text)
            structures.add("placed after" if back and not said else "relation said")
        structures.add("sentences" if text.count(".") >= 2 else "motion after" if ";" in text else "nominal")
    assert structures >= {"placed after", "relation said", "sentences", "motion after", "nominal"}


def test_without_people_captions_the_planner_reads_the_worlds_captions_as_before():
    rng = np.random.default_rng([3, 7])
    expected = []
    for _ in range(60):
        spec = sample_spec(rng, split="train", num_frames=25)
        text = canonical_caption(spec) if rng.random() < 0.25 else caption(spec, rng)
        expected.append((text, plan_targets(spec)))
    assert caption_set(60, 3) == expected == caption_set(60, 3, people_share=0.0)


def test_a_share_of_people_captions_replaces_world_phrasings_only(monkeypatch):
    import kinema.train.planner as planner_training
    import kinema.world.people_captions as people

    monkeypatch.setattr(planner_training, "canonical_caption", lambda spec: "CANONICAL")
    real = people.people_caption
    monkeypatch.setattr(people, "people_caption", lambda spec, rng: "PEOPLE " + real(spec, rng))
    texts = [text for text, _ in caption_set(2000, 1, people_share=0.3)]
    share = {kind: sum(t.startswith(kind) for t in texts) / 2000 for kind in ("CANONICAL", "PEOPLE")}
    assert abs(share["CANONICAL"] - 0.25) < 0.03  # the benchmark's phrasing keeps its quarter
    assert abs(share["PEOPLE"] - 0.3) < 0.03
    with pytest.raises(Exception, match="share of people's captions"):
        caption_set(10, 1, people_share=0.8)


def test_the_cli_takes_people_captions_for_the_planner_only(capsys, tmp_path):
    assert main(["train", "dit", "--preset", "smoke", "--out", str(tmp_path / "d"), "--people-captions", "0.2"]) == 2
    assert "for `kinema train planner` only" in capsys.readouterr().err
    assert main(["train", "planner", "--out", str(tmp_path / "p"), "--people-captions", "0.9"]) == 2
    assert "within [0, 0.75]" in capsys.readouterr().err
