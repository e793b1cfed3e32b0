"""Judging objects a video never shows, and the paired comparison of two eval runs."""

import gzip
import json

import pytest

from kinema.errors import KinemaError
from kinema.eval.compare import compare, markdown, paired_difference, paired_mean_difference, read_samples
from kinema.eval.judge import judge
from kinema.eval.prompts import benchmark_items
from kinema.world import render
from kinema.world.analyze import analyze_frames
from kinema.world.spec import SceneSpec


def test_an_object_the_video_never_shows_is_not_alive():
    item = next(it for it in benchmark_items(4, num_frames=9) if it.category == "count" and len(it.spec.objects) >= 2)
    shown = SceneSpec.from_dict(item.spec.to_dict())
    shown.objects = shown.objects[:1]
    verdict = judge("count", item.spec, analyze_frames(render(shown)))
    assert len(verdict["alive"]) == len(item.spec.objects)
    assert verdict["alive"].count(False) >= len(item.spec.objects) - 1 and not verdict["count"]
    full = judge("count", item.spec, analyze_frames(render(item.spec)))
    assert full["alive"] == [True] * len(item.spec.objects)


def test_paired_difference_counts_only_discordant_pairs():
    a = [True] * 50 + [False] * 50
    same = paired_difference(a, list(a))
    assert same["diff"] == 0 and same["ci95"] == [0, 0] and same["verdict"] == "same within the interval"
    worse = paired_difference(a, [False] * 100)
    assert worse["diff"] == -0.5 and worse["ci95"][1] < 0 and worse["verdict"] == "worse"
    noisy = paired_difference(a, a[:45] + [False] * 5 + [True] * 5 + a[55:])
    assert noisy["diff"] == 0 and noisy["ci95"][0] < 0 < noisy["ci95"][1]
    better = paired_mean_difference([0.5] * 10, [0.6, 0.7] * 5)
    assert better["verdict"] == "better" and abs(better["diff"] - 0.15) < 1e-12


def _records(verdicts):
    spec = {"objects": [{"shape": "circle"}]}
    return [{"category": "single", "split": "seen", "index": i, "seed": 0, "prompt": f"p{i}", "spec": spec,
             "verdict": {"color": c, "shape": True, "size": True, "motion": True, "everything": c, "alive": [c]}}
            for i, c in enumerate(verdicts)]


def test_compare_reads_runs_and_flags_a_loss(tmp_path):
    a = _records([True] * 40)
    b = _records([True] * 10 + [False] * 30)
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as f:
        f.write("\n".join(json.dumps(r) for r in a))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "samples.jsonl").write_text("\n".join(json.dumps(r) for r in b))
    result = compare(read_samples(tmp_path / "a.jsonl.gz"), read_samples(tmp_path / "b"))
    rows = {r["category"]: r for r in result["rows"]}
    assert rows["colour"]["seen"]["verdict"] == "worse" and rows["shape"]["seen"]["diff"] == 0
    assert result["object_alive"]["verdict"] == "worse" and result["items"] == 40
    text = markdown(result, "A", "B")
    assert "colour | seen | 100.0% | 25.0% | -75.0" in text and "Worse beyond the interval: colour (seen)" in text
    # rows neither run judged (here every category but the single-object ones) are named, not tabled
    assert "| count (1-3) |" not in text and "| shape | seen |" in text
    assert "Not in both runs: colour (heldout), shape (heldout)" in text and "motion direction (heldout), count (1-3), " in text


def test_compare_refuses_runs_of_different_benchmarks(tmp_path):
    a = _records([True] * 3)
    b = [{**r, "prompt": "other"} for r in a]
    with pytest.raises(KinemaError, match="prompts differ"):
        compare(a, b)
    with pytest.raises(KinemaError, match="share no"):
        compare(a, [{**r, "index": r["index"] + 100} for r in a])
    with pytest.raises(KinemaError, match="not a kinema eval folder"):
        read_samples(tmp_path)


def test_a_tool_given_no_samples_ends_with_the_reason(tmp_path):
    from kinema.eval.compare import samples_or_exit

    with pytest.raises(SystemExit, match=r"^verdicts_by_star: .*not a kinema eval folder"):
        samples_or_exit(tmp_path, "verdicts_by_star")
    (tmp_path / "samples.jsonl").write_text('{"category": "single"}\n')
    assert samples_or_exit(tmp_path, "verdicts_by_star") == [{"category": "single"}]
