"""`kinema eval --resume`: a run stopped part-way continues where it stopped, and its report is the
one an uninterrupted run writes; a resume that would mix two runs is refused by name."""

import json

import numpy as np
import pytest
import torch

import kinema.eval.run as eval_run
from kinema.errors import KinemaError
from kinema.eval.kept_latents import LATENTS_FILE
from kinema.eval.progress import PROGRESS_DIR
from kinema.eval.prompts import benchmark_items
from kinema.eval.run import run_eval
from kinema.models.dit import DiTConfig
from kinema.models.text import TextEncoder
from kinema.models.vae import VAEConfig
from kinema.pipeline import Pipeline
from kinema.video import Video
from kinema.world import render
from kinema.world.spec import SceneSpec

FRAMES = {"num_frames": 9}
ORACLE_RUN = dict(n=3, seeds=(0, 1), workers=1, progress=False, size_kwargs=FRAMES)


class Stopped(Exception):
    """What a kill part-way through looks like to the run: it ends without its report."""


class Oracle:
    """Renders the intended scene, one in three with its colours changed (so verdicts vary), and
    can be told to stop after a number of videos."""

    def __init__(self, items, stop_after=None):
        self.specs = {it.prompt: it.spec for it in items}
        self.stop_after, self.made = stop_after, 0

    def generate(self, prompt, *, num_frames, size, fps, seed=0, **_):
        if self.stop_after is not None and self.made >= self.stop_after:
            raise Stopped(f"stopped after {self.made} videos")
        self.made += 1
        spec = SceneSpec.from_dict(self.specs[prompt].to_dict())
        if (len(prompt) + seed) % 3 == 0:
            for o in spec.objects:
                o.color = "white" if o.color != "white" else "red"
        return Video(render(spec), fps=fps)


def _samples(folder):
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]


@pytest.fixture
def small_parts(monkeypatch):
    monkeypatch.setattr(eval_run, "PART_VIDEOS", 5)


def test_a_stopped_run_resumes_where_it_stopped_and_reports_as_a_whole_run(tmp_path, small_parts):
    items = benchmark_items(3, **FRAMES)
    whole = run_eval(Oracle(items), tmp_path / "whole", **ORACLE_RUN)

    out = tmp_path / "stopped"
    with pytest.raises(Stopped):
        run_eval(Oracle(items, stop_after=23), out, **ORACLE_RUN)
    assert not (out / "report.json").exists()
    parts = sorted((out / PROGRESS_DIR).glob("part_*.json"))
    assert len(parts) == 4  # 20 of the 23 videos made were judged and kept, 5 at a time

    again = Oracle(items)
    resumed = run_eval(again, out, resume=True, **ORACLE_RUN)
    assert again.made == len(items) * 2 - 20  # only what the stopped run had not kept
    assert resumed["rows"] == whole["rows"]
    assert resumed["object_alive"] == whole["object_alive"]
    assert resumed["temporal_stability"] == whole["temporal_stability"]
    assert _samples(out) == _samples(tmp_path / "whole")  # the same records, in the benchmark's order
    assert resumed["meta"]["sessions"] == 2 and "sessions" not in whole["meta"]
    assert " over 2 sessions." in (out / "report.md").read_text()
    assert not (out / PROGRESS_DIR).exists()
    sheet = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(out / "contact_sheet.png"))
    same = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(tmp_path / "whole" / "contact_sheet.png"))
    assert sheet.shape == same.shape and np.array_equal(sheet, same)  # its cells came back from the parts


def test_a_half_written_part_is_not_counted(tmp_path, small_parts):
    items = benchmark_items(3, **FRAMES)
    out = tmp_path / "run"
    with pytest.raises(Stopped):
        run_eval(Oracle(items, stop_after=12), out, **ORACLE_RUN)
    progress = out / PROGRESS_DIR
    (progress / "part_00002.npz").write_bytes(b"a part killed before its JSON was written")
    again = Oracle(items)
    run_eval(again, out, resume=True, **ORACLE_RUN)
    assert again.made == len(items) * 2 - 10
    assert len(_samples(out)) == len(items) * 2


def test_resume_refuses_another_runs_settings_and_a_plain_run_refuses_to_overwrite(tmp_path, small_parts):
    items = benchmark_items(3, **FRAMES)
    out = tmp_path / "run"
    with pytest.raises(Stopped):
        run_eval(Oracle(items, stop_after=7), out, **ORACLE_RUN)
    with pytest.raises(KinemaError, match="unfinished run .*5 videos judged.*--resume"):
        run_eval(Oracle(items), out, **ORACLE_RUN)
    with pytest.raises(KinemaError, match="started with different n, prompts, videos"):
        run_eval(Oracle(benchmark_items(4, **FRAMES)), out, resume=True, **{**ORACLE_RUN, "n": 4})
    with pytest.raises(KinemaError, match="started with different prompts, seeds, videos"):
        run_eval(Oracle(items), out, resume=True, **{**ORACLE_RUN, "seeds": (0, 1, 2)})
    with pytest.raises(KinemaError, match="started with different asked"):
        run_eval(Oracle(items), out, resume=True, steps=7, **ORACLE_RUN)
    assert len(list((out / PROGRESS_DIR).glob("part_*.json"))) == 1  # refusals kept what was done
    run_eval(Oracle(items), out, resume=True, **ORACLE_RUN)
    with pytest.raises(KinemaError, match="finished"):
        run_eval(Oracle(items), out, resume=True, **ORACLE_RUN)
    fresh = tmp_path / "fresh"
    run_eval(Oracle(items), fresh, resume=True, **ORACLE_RUN)  # nothing to resume: a whole run
    assert _samples(fresh) == _samples(out)


SIZE = {"width": 32, "height": 32, "fps": 8.0, "num_frames": 5}
PIPE_RUN = dict(n=2, seeds=(0, 1), workers=1, progress=False, size_kwargs=SIZE, categories=("single",),
                batch_size=2)


@pytest.fixture(scope="module")
def pipe():
    return Pipeline.from_configs(VAEConfig(base_channels=8), DiTConfig(hidden_size=32, depth=2, num_heads=2),
                                 text_encoder=TextEncoder.from_pretrained(), seed=0, steps=2, size="32x32",
                                 fps=8.0, guidance=2.0, layout=False)


def _stopping(pipe, after_batches):
    """The pipeline, but its sampling stops (raises) after `after_batches` batches."""
    import copy

    stopping = copy.copy(pipe)
    calls = {"n": 0}

    def generate_batch(*a, **k):
        if calls["n"] >= after_batches:
            raise Stopped("stopped")
        calls["n"] += 1
        return pipe.generate_batch(*a, **k)

    stopping.generate_batch = generate_batch
    return stopping


def test_kept_latents_survive_a_resume_and_other_weights_are_refused(pipe, tmp_path, monkeypatch):
    monkeypatch.setattr(eval_run, "PART_VIDEOS", 2)
    whole = tmp_path / "whole"
    run_eval(pipe, whole, keep_latents=True, **PIPE_RUN)
    out = tmp_path / "stopped"
    with pytest.raises(Stopped):
        run_eval(_stopping(pipe, 2), out, keep_latents=True, **PIPE_RUN)
    assert len(list((out / PROGRESS_DIR).glob("part_*.safetensors"))) == 2

    other = Pipeline.from_configs(VAEConfig(base_channels=8), DiTConfig(hidden_size=32, depth=2, num_heads=2),
                                  text_encoder=pipe.text_encoder, seed=1, steps=2, size="32x32", fps=8.0,
                                  guidance=2.0, layout=False)
    with pytest.raises(KinemaError, match="different weights"):
        run_eval(other, out, keep_latents=True, resume=True, **PIPE_RUN)
    with pytest.raises(KinemaError, match="different keep_latents"):
        run_eval(pipe, out, resume=True, **PIPE_RUN)

    run_eval(pipe, out, keep_latents=True, resume=True, **PIPE_RUN)
    from safetensors import safe_open

    with safe_open(str(whole / LATENTS_FILE), "pt") as a, safe_open(str(out / LATENTS_FILE), "pt") as b:
        assert sorted(a.keys()) == sorted(b.keys()) and len(a.keys()) == 8
        assert json.loads(a.metadata()["videos"]) == json.loads(b.metadata()["videos"])
        for key in a.keys():
            assert torch.allclose(a.get_tensor(key), b.get_tensor(key), atol=1e-5), key
    assert [s["detected"] for s in _samples(out)] == [s["detected"] for s in _samples(whole)]

    decoded = tmp_path / "decoded"  # the resumed run's latents serve --latents-from like any run's
    run_eval(pipe, decoded, latents_from=out, **PIPE_RUN)
    assert [s["detected"] for s in _samples(decoded)] == [s["detected"] for s in _samples(whole)]


def test_the_cli_resumes_and_says_when_there_is_nothing_to_resume(pipe, tmp_path, monkeypatch, capsys):
    from kinema.cli import main

    monkeypatch.setattr(TextEncoder, "from_pretrained", classmethod(lambda cls, *a, **k: pipe.text_encoder))
    model = str(pipe.save_pretrained(tmp_path / "model"))
    common = ["eval", "--model", model, "--n", "1", "--seeds", "1", "--categories", "static", "--workers", "1",
              "-o", str(tmp_path / "run")]
    assert main(common + ["--resume"]) == 0  # nothing unfinished: a whole run
    assert main(common + ["--resume"]) == 2
    assert "is finished" in capsys.readouterr().err
