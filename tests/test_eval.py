"""The benchmark machinery, checked with oracle 'models' that render the intended scene (all
verdicts must be right) or a corrupted one (the matching verdicts must fail)."""

import json

import numpy as np
import pytest

from kinema.eval.prompts import CATEGORIES, benchmark_items
from kinema.eval.run import run_eval
from kinema.eval.stats import wilson_interval
from kinema.video import Video
from kinema.world import render
from kinema.world.spec import SceneSpec


class Oracle:
    def __init__(self, items, corrupt=None):
        self.specs = {it.prompt: it.spec for it in items}
        self.corrupt = corrupt

    def generate(self, prompt, *, num_frames, size, fps, seed=0, **_):
        spec = SceneSpec.from_dict(self.specs[prompt].to_dict())
        if self.corrupt:
            self.corrupt(spec)
        return Video(render(spec), fps=fps)


def test_oracle_scores_everything_right(tmp_path):
    n = 6
    items = benchmark_items(n, num_frames=9)
    oracle = Oracle(items)
    report = run_eval(oracle, tmp_path, n=n, seeds=(0,), workers=1, progress=False,
                      size_kwargs={"num_frames": 9})
    for row in report["rows"]:
        for split in ("seen", "heldout"):
            assert row[split]["rate"] == 1.0, (row["category"], split, row[split])
    assert report["temporal_stability"]["mean"] == 1.0
    assert report["object_alive"]["rate"] == 1.0
    assert (tmp_path / "report.md").read_text().count("✅") >= 18
    assert (tmp_path / "contact_sheet.png").stat().st_size > 1000
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    assert len(lines) == n * 9 and json.loads(lines[0])["verdict"]
    for record in map(json.loads, lines):  # each sample keeps where its objects were first seen
        spec = oracle.specs[record["prompt"]]  # what was drawn (a prompt repeated keeps its last scene)
        for obj in spec.objects:
            x, y = spec.center(obj, 0)
            assert any(d["first_frame"] == 0 and abs(d["first_xy"][0] - x) < 0.02 and abs(d["first_xy"][1] - y) < 0.02
                       for d in record["detected"]), (record["prompt"], record["detected"])


def test_wrong_colours_are_caught(tmp_path):
    items = benchmark_items(4, num_frames=9)

    def recolour(spec):
        for o in spec.objects:
            o.color = "white" if o.color != "white" else "red"
    report = run_eval(Oracle(items, recolour), tmp_path, n=4, seeds=(0,), workers=1, progress=False,
                      size_kwargs={"num_frames": 9})
    rows = {r["category"]: r for r in report["rows"]}
    assert rows["colour"]["seen"]["rate"] == 0.0
    assert rows["shape"]["seen"]["rate"] == 1.0
    assert rows["everything right"]["seen"]["rate"] == 0.0


def test_wilson_interval():
    lo, hi = wilson_interval(95, 100)
    assert 0.88 < lo < 0.95 < hi < 0.985
    assert wilson_interval(0, 10)[0] == 0.0


def test_categories_cover_design_table():
    assert set(CATEGORIES) == {"single", "count", "relation", "binding", "static"}


def test_sampler_steps_and_shift_reach_the_pipeline_and_the_report(tmp_path):
    items = benchmark_items(1, num_frames=5)
    seen = []

    class Recording(Oracle):
        def generate(self, prompt, **kw):
            seen.append((kw.get("sampler"), kw.get("steps"), kw.get("shift")))
            return super().generate(prompt, **kw)

    report = run_eval(Recording(items), tmp_path, n=1, seeds=(0,), steps=7, sampler="multistep", shift=6.0,
                      workers=1, progress=False, size_kwargs={"num_frames": 5})
    assert seen and set(seen) == {("multistep", 7, 6.0)}
    assert report["meta"]["sampler"] == "multistep" and report["meta"]["shift"] == 6.0
    assert "sampler multistep, shift 6.0" in (tmp_path / "report.md").read_text()


def test_given_items_replace_the_benchmark_prompts(tmp_path):
    from kinema.eval.prompts import make_item

    items = [make_item("relation", "heldout", i, num_frames=5) for i in (200, 201)]
    report = run_eval(Oracle(items), tmp_path, n=2, seeds=(0, 1), workers=1, progress=False, items=items)
    records = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert sorted((r["index"], r["seed"]) for r in records) == [(200, 0), (200, 1), (201, 0), (201, 1)]
    assert {(r["category"], r["split"]) for r in records} == {("relation", "heldout")}
    relation = next(row for row in report["rows"] if row["category"] == "spatial relation")
    assert relation["heldout"]["rate"] == 1.0 and relation["heldout"]["n"] == 4 and relation["seen"]["rate"] is None


def test_report_header_names_the_settings_the_pipeline_resolved(tmp_path):
    items = benchmark_items(1, num_frames=5)

    class Resolving(Oracle):
        def resolve_sampling(self, steps=None, guidance=None, sampler=None, shift=None):
            return {"steps": steps or 20, "guidance": guidance or 1.0, "sampler": sampler or "multistep",
                    "shift": shift}

    run_eval(Resolving(items), tmp_path / "auto", n=1, seeds=(0,), workers=1, progress=False,
             size_kwargs={"num_frames": 5})
    header = (tmp_path / "auto" / "report.md").read_text()
    assert "steps 20, guidance 1.0, sampler multistep, shift by token count" in header
    report = run_eval(Resolving(items), tmp_path / "asked", n=1, seeds=(0,), steps=7, shift=6.0, workers=1,
                      progress=False, size_kwargs={"num_frames": 5})
    assert report["meta"]["settings"] == {"steps": 7, "guidance": 1.0, "sampler": "multistep", "shift": 6.0}
    assert "steps 7, guidance 1.0, sampler multistep, shift 6.0" in (tmp_path / "asked" / "report.md").read_text()


def test_report_header_names_the_guidance_interval_asked_for(tmp_path):
    items = benchmark_items(1, num_frames=5)

    class Resolving(Oracle):
        def __init__(self, items):
            super().__init__(items)
            self.asked = []

        def generate(self, prompt, **kw):
            self.asked.append(kw.get("guidance_interval"))
            return super().generate(prompt, **{k: v for k, v in kw.items() if k != "guidance_interval"})

        def resolve_sampling(self, steps=None, guidance=None, sampler=None, shift=None, guidance_interval=None):
            settings = {"steps": 20, "guidance": 4.0, "sampler": "multistep", "shift": 6.0}
            if guidance_interval is not None:
                settings["guidance_interval"] = list(guidance_interval)
            return settings

    pipe = Resolving(items)
    report = run_eval(pipe, tmp_path / "gi", n=1, seeds=(0,), workers=1, progress=False, guidance_interval=(0.0, 0.8),
                      size_kwargs={"num_frames": 5})
    assert report["meta"]["settings"]["guidance_interval"] == [0.0, 0.8]
    assert set(pipe.asked) == {(0.0, 0.8)}
    assert "guidance 4.0, guidance interval [0, 0.8], sampler" in (tmp_path / "gi" / "report.md").read_text()
    run_eval(pipe, tmp_path / "every", n=1, seeds=(0,), workers=1, progress=False, size_kwargs={"num_frames": 5})
    assert "interval" not in (tmp_path / "every" / "report.md").read_text()


def test_report_header_names_the_denoising_precision(tmp_path):
    items = benchmark_items(1, num_frames=5)

    class Resolving(Oracle):
        def resolve_sampling(self, steps=None, guidance=None, sampler=None, shift=None):
            return {"steps": 20, "guidance": 1.0, "sampler": "multistep", "shift": 6.0, "precision": "bf16"}

    report = run_eval(Resolving(items), tmp_path / "bf16", n=1, seeds=(0,), workers=1, progress=False,
                      size_kwargs={"num_frames": 5})
    assert report["meta"]["settings"]["precision"] == "bf16"
    assert "shift 6.0, precision bf16" in (tmp_path / "bf16" / "report.md").read_text()


def test_samples_keep_the_plan_and_the_header_says_the_layout_was_planned(tmp_path):
    items = benchmark_items(1, num_frames=5)

    class Planning(Oracle):
        def generate(self, prompt, **kw):
            video = super().generate(prompt, **kw)
            video.metadata["plan"] = {"objects": [], "prompt_seen": prompt}
            return video

        def resolve_sampling(self, steps=None, guidance=None, sampler=None, shift=None):
            return {"steps": 20, "guidance": 4.0, "sampler": "multistep", "shift": 6.0, "precision": "fp32",
                    "layout": "planned"}

    run_eval(Planning(items), tmp_path, n=1, seeds=(0,), workers=1, progress=False, size_kwargs={"num_frames": 5})
    assert "precision fp32, layout planned" in (tmp_path / "report.md").read_text()
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert all(s["plan"]["prompt_seen"] == s["prompt"] for s in samples)


def test_categories_keep_the_whole_benchmarks_prompts_for_those_categories():
    whole = benchmark_items(3, num_frames=5)
    some = benchmark_items(3, categories=["binding", "count"], num_frames=5)
    assert [it.category for it in some] == ["count"] * 6 + ["binding"] * 6  # benchmark order, both splits
    expected = [it for it in whole if it.category in ("count", "binding")]
    assert [(it.prompt, it.split, it.index, it.spec.to_dict()) for it in some] == \
        [(it.prompt, it.split, it.index, it.spec.to_dict()) for it in expected]


@pytest.mark.parametrize("categories,word", [(["colour"], "'colour'"), ([], "non-empty"), ("count", "non-empty")])
def test_unknown_or_empty_categories_are_refused_by_name(tmp_path, categories, word):
    with pytest.raises(ValueError, match=word):
        run_eval(Oracle([]), tmp_path / "out", n=1, seeds=(0,), workers=1, progress=False, categories=categories)
    assert not (tmp_path / "out").exists()  # nothing written for a refused run


def test_a_run_on_one_category_reports_only_it(tmp_path):
    items = benchmark_items(2, categories=["count"], num_frames=5)
    report = run_eval(Oracle(items), tmp_path, n=2, seeds=(0,), workers=1, progress=False,
                      size_kwargs={"num_frames": 5}, categories=("count",))
    rows = {r["category"]: r for r in report["rows"]}
    assert rows["count (1-3)"]["seen"]["rate"] == 1.0 and rows["count (1-3)"]["heldout"]["n"] == 2
    assert rows["colour"]["seen"]["n"] == 0 and rows["colour"]["seen"]["rate"] is None
    assert report["meta"]["categories"] == ["count"] and report["meta"]["videos"] == 4
    assert report["temporal_stability"]["n"] == 0 and report["temporal_stability"]["mean"] is None

    def refuse(token):
        raise AssertionError(f"report.json holds {token}")
    json.loads((tmp_path / "report.json").read_text(), parse_constant=refuse)  # strict JSON: no NaN
    md = (tmp_path / "report.md").read_text()
    assert "categories count only" in md and "| temporal stability (static prompts; 1 − mean frame difference) | – |" in md
    assert "| colour | –  |  | ≥ 95.0% |" in md  # no interval for a row without videos


def test_categories_also_filter_given_items(tmp_path):
    items = benchmark_items(1, num_frames=5)
    report = run_eval(Oracle(items), tmp_path, n=1, seeds=(0,), workers=1, progress=False, items=items,
                      categories=["static"])
    assert report["meta"]["videos"] == 1 and report["temporal_stability"]["n"] == 1
