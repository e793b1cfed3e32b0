"""`kinema eval --keep-latents` / `--latents-from`: a new decoder judged on the latents a run's
transformer drew, exactly as a whole run of the pipeline with that decoder would judge it."""

import copy
import json

import numpy as np
import pytest
import torch

from kinema.errors import KinemaError
from kinema.eval.kept_latents import LATENTS_FILE
from kinema.eval.prompts import benchmark_items
from kinema.eval.run import run_eval
from kinema.models.dit import DiTConfig
from kinema.models.text import TextEncoder
from kinema.models.vae import VAEConfig
from kinema.pipeline import Pipeline

SIZE = {"width": 32, "height": 32, "fps": 8.0, "num_frames": 5}
RUN = dict(seeds=(0, 1), workers=1, progress=False, size_kwargs=SIZE, categories=("single",), batch_size=3)


@pytest.fixture(scope="module")
def pipe():
    return Pipeline.from_configs(VAEConfig(base_channels=8), DiTConfig(hidden_size=32, depth=2, num_heads=2),
                                 text_encoder=TextEncoder.from_pretrained(), seed=0, steps=2, size="32x32",
                                 fps=8.0, guidance=2.0, layout=False)


def _with(pipe, part: str, seed: int) -> Pipeline:
    """A copy of `pipe` whose `part` ('vae.decoder', 'vae.encoder' or 'transformer') has new weights."""
    other = copy.copy(pipe)
    other.vae, other.transformer = copy.deepcopy(pipe.vae), copy.deepcopy(pipe.transformer)
    module = other.transformer if part == "transformer" else getattr(other.vae, part.split(".")[1])
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return other


def _samples(folder):
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]


def test_a_new_decoder_on_kept_latents_judges_as_a_whole_run_would(pipe, tmp_path):
    kept_run = tmp_path / "kept"
    run_eval(pipe, kept_run, n=2, keep_latents=True, **RUN)
    assert (kept_run / LATENTS_FILE).is_file()
    assert (kept_run / LATENTS_FILE).stat().st_mode & 0o777 == (kept_run / "report.json").stat().st_mode & 0o777

    new_decoder = _with(pipe, "vae.decoder", seed=1)
    whole = run_eval(new_decoder, tmp_path / "whole", n=2, **RUN)

    def no_sampling(*a, **k):
        raise AssertionError("a run on kept latents must not sample")

    reuse = copy.copy(new_decoder)
    reuse.generate_batch = no_sampling
    decoded = run_eval(reuse, tmp_path / "decoded", n=2, latents_from=kept_run, **RUN)
    assert decoded["rows"] == whole["rows"] and decoded["object_alive"] == whole["object_alive"]
    assert [(s["prompt"], s["seed"], s["detected"]) for s in _samples(tmp_path / "decoded")] == \
        [(s["prompt"], s["seed"], s["detected"]) for s in _samples(tmp_path / "whole")]
    assert decoded["meta"]["settings"] == whole["meta"]["settings"]
    assert "Latents drawn by the same transformer in an earlier run" in (tmp_path / "decoded" / "report.md").read_text()

    # the frames themselves: the kept latents decoded equal the new pipeline's own video
    items = benchmark_items(1, categories=["single"], **SIZE)
    own = new_decoder.generate_batch([items[0].prompt], seeds=[1], num_frames=5, size="32x32", fps=8.0)[0]
    from kinema.eval.kept_latents import KeptLatents

    latents, meta = KeptLatents(kept_run, new_decoder).batch([(items[0], 1)])
    again = new_decoder.videos_from_latents(latents, meta)[0]
    assert np.abs(own.frames.astype(int) - again.frames.astype(int)).max() <= 1
    old = pipe.videos_from_latents(latents, meta)[0]
    assert np.abs(old.frames.astype(int) - again.frames.astype(int)).max() > 10  # the decoder did change


def test_kept_latents_refuse_what_would_make_the_report_another_models(pipe, tmp_path):
    kept_run = tmp_path / "kept"
    run_eval(pipe, kept_run, n=1, keep_latents=True, **RUN)
    with pytest.raises(KinemaError, match="another transformer"):
        run_eval(_with(pipe, "transformer", 2), tmp_path / "a", n=1, latents_from=kept_run, **RUN)
    with pytest.raises(KinemaError, match="another latent space"):
        run_eval(_with(pipe, "vae.encoder", 3), tmp_path / "b", n=1, latents_from=kept_run, **RUN)
    with pytest.raises(KinemaError, match="sampling settings"):
        run_eval(pipe, tmp_path / "c", n=1, latents_from=kept_run, steps=4, **RUN)
    with pytest.raises(KinemaError, match="no latents for 4 of the videos"):
        run_eval(pipe, tmp_path / "d", n=2, latents_from=kept_run, **RUN)
    with pytest.raises(KinemaError, match="already kept"):
        run_eval(pipe, tmp_path / "e", n=1, latents_from=kept_run, keep_latents=True, **RUN)
    with pytest.raises(KinemaError, match="not found"):
        run_eval(pipe, tmp_path / "f", n=1, latents_from=tmp_path / "nowhere", **RUN)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / LATENTS_FILE).write_bytes((kept_run / LATENTS_FILE).read_bytes()[:200])
    with pytest.raises(KinemaError, match="not a kept-latents file"):
        run_eval(pipe, tmp_path / "g", n=1, latents_from=broken, **RUN)
    for refused in "abcdefg":  # a refused run writes no report
        assert not (tmp_path / refused / "report.json").exists()


def test_videos_from_latents_refuses_latents_of_another_shape(pipe):
    with pytest.raises(KinemaError, match="decodes"):
        pipe.videos_from_latents(torch.zeros(1, pipe.latent_channels + 1, 2, 4, 4),
                                 [{"size": "32x32", "num_frames": 5, "fps": 8.0}])


def test_the_cli_keeps_latents_and_judges_a_saved_pipeline_on_them(pipe, tmp_path, monkeypatch, capsys):
    from kinema.cli import main

    monkeypatch.setattr(TextEncoder, "from_pretrained", classmethod(lambda cls, *a, **k: pipe.text_encoder))
    model = str(pipe.save_pretrained(tmp_path / "model"))
    common = ["eval", "--model", model, "--n", "1", "--seeds", "1", "--categories", "static", "--workers", "1"]
    assert main(common + ["--keep-latents", "-o", str(tmp_path / "kept")]) == 0
    assert main(common + ["--latents-from", str(tmp_path / "kept"), "-o", str(tmp_path / "decoded")]) == 0
    kept, decoded = _samples(tmp_path / "kept"), _samples(tmp_path / "decoded")
    assert [s["detected"] for s in kept] == [s["detected"] for s in decoded]
    assert "decoded by this pipeline" in capsys.readouterr().out
    assert main(common + ["--latents-from", str(tmp_path / "kept"), "--steps", "3", "-o", str(tmp_path / "x")]) == 2
    assert "sampling settings" in capsys.readouterr().err
