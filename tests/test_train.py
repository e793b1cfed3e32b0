"""`kinema train`: presets and config overrides, smoke VAE/DiT runs and their exports, exact resume."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from kinema.cli import main
from kinema.errors import KinemaError
from kinema.train.config import preset, resolve
from kinema.train.trainer import lr_at

ROOT = Path(__file__).resolve().parents[1]


def _metrics(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def _steps(out: Path) -> list[dict]:
    return [r for r in _metrics(out) if "event" not in r]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("KINEMA_TRAIN_DIE_AFTER_CHECKPOINT", None)
    return env


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vae")
    assert main(["train", "vae", "--preset", "smoke", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def dit_run(tmp_path_factory, vae_run):
    out = tmp_path_factory.mktemp("dit")
    assert main(["train", "dit", "--preset", "smoke", "--vae", str(vae_run / "final"), "--out", str(out),
                 "--quiet"]) == 0
    return out


# ----- configuration ----------------------------------------------------------------------------

def test_presets_resolve_and_tiny_recipe():
    for stage in ("vae", "dit"):
        for name in ("smoke", "tiny"):
            cfg = resolve(stage, name)
            assert cfg.stage == stage and cfg.preset == name
            for b in cfg.data.buckets:
                assert b[0] % 16 == 0 and b[1] % 16 == 0 and (b[2] - 1) % 4 == 0
    vae, dit = preset("tiny", "vae"), preset("tiny", "dit")
    assert vae.model["base_channels"] == 32 and vae.model["latent_channels"] == 8
    assert (vae.motion_loss_weight, vae.edge_loss_weight, vae.object_loss_weight) == (1.0, 0.5, 0.3)
    assert (dit.model["hidden_size"], dit.model["depth"], dit.model["num_heads"]) == (256, 8, 4)
    shapes = {tuple(b[:3]) for b in dit.data.buckets}
    assert {(128, 128, 25), (224, 128, 25), (128, 224, 25), (176, 96, 25)} <= shapes
    assert any(b[2] == 1 for b in dit.data.buckets)  # stills


def test_config_file_overrides(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"steps": 7, "optim": {"lr": 0.01}, "model": {"depth": 3},
                             "data": {"buckets": [[64, 32, 9]]}}))
    cfg = resolve("dit", "smoke", str(f))
    assert (cfg.steps, cfg.optim.lr, cfg.model["depth"], cfg.model["hidden_size"]) == (7, 0.01, 3, 32)
    assert cfg.data.buckets == [[64, 32, 9]]
    f.write_text(json.dumps({"optim": {"lr": "fast"}}))
    with pytest.raises(KinemaError, match="optim.lr: expected a number"):
        resolve("dit", "smoke", str(f))


@pytest.mark.parametrize("body, named", [
    ({"stpes": 3}, "stpes"),
    ({"optim": {"learning_rate": 1}}, "optim.learning_rate"),
    ({"data": {"buckets": [[100, 100, 25]]}}, "100x100"),
    ({"object_loss_weight": -1.0}, "object_loss_weight"),
    ({"timestep_shift": -2.0}, "timestep_shift"),
    ({"object_loss_balance": True, "object_loss_weight": 0.0}, "object_loss_balance"),
])
def test_bad_config_file_is_one_line_exit_2(tmp_path, capsys, body, named):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(body))
    rc = main(["train", "vae", "--preset", "smoke", "--config", str(f), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and named in err and err.startswith("kinema: error:")


def test_unknown_model_field_is_exit_2(tmp_path, capsys):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps({"model": {"hidden_sise": 64}}))
    rc = main(["train", "vae", "--preset", "smoke", "--config", str(f), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "model.hidden_sise" in err and len(err.splitlines()) == 1


def test_lr_schedule_warmup_then_cosine():
    cfg = preset("smoke", "vae")
    cfg.steps, cfg.optim.warmup_steps, cfg.optim.lr, cfg.optim.min_lr_ratio = 10, 2, 1.0, 0.1
    lrs = [lr_at(cfg, s) for s in range(10)]
    assert lrs[0] == 0.5 and lrs[1] == 1.0
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:])) and lrs[-1] >= 0.1


# ----- smoke runs -------------------------------------------------------------------------------

def test_smoke_vae_trains_and_exports(vae_run):
    final = vae_run / "final"
    cfg = json.loads((final / "config.json").read_text())
    assert cfg["latent_channels"] == 4 and cfg["latent_std"] != [1.0] * 4  # measured stats stored
    stats = [r for r in _metrics(vae_run) if r.get("event") == "latent_stats"][0]
    assert stats["psnr_eval"] > 0 and stats["psnr_heldout"] > 0
    assert (final / "diffusion_pytorch_model.safetensors").is_file()
    from kinema.train.components import load_vae

    vae = load_vae(final)
    z = vae.encode(torch.zeros(1, 3, 5, 32, 32))
    assert z.shape == (1, 4, 2, 4, 4)
    steps = _steps(vae_run)
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    assert all({"loss", "lr", "samples_per_s", "elapsed", "psnr"} <= set(r) for r in steps)
    ckpts = sorted(p.name for p in (vae_run / "checkpoints").iterdir())
    assert ckpts == ["step_00000002", "step_00000004"]
    files = {p.suffix for p in (vae_run / "checkpoints" / "step_00000004").iterdir()}
    assert files == {".safetensors", ".json"}  # no pickle anywhere


def test_smoke_dit_exports_a_pipeline(dit_run):
    from kinema.pipeline import Pipeline

    pipe = Pipeline.from_pretrained(dit_run / "final")
    assert pipe.transformer.config.hidden_size == 32 and pipe.vae.config.latent_channels == 4
    assert pipe.config["size"] == "32x32"
    # the export holds the EMA weights
    ema = load_file(str(dit_run / "checkpoints" / "step_00000004" / "ema.safetensors"))
    exported = load_file(str(dit_run / "final" / "transformer" / "diffusion_pytorch_model.safetensors"))
    assert all(torch.equal(ema[k], exported[k]) for k in exported)
    video = pipe.generate("a red circle moves right", num_frames=5, size="32x32", steps=1, seed=0)
    assert video.frames.shape == (5, 32, 32, 3)


def test_existing_run_needs_resume(vae_run, capsys):
    rc = main(["train", "vae", "--preset", "smoke", "--out", str(vae_run), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "--resume" in err


def test_dit_resume_after_kill_matches_uninterrupted_run(tmp_path, vae_run, dit_run):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "kinema.cli", "train", "dit", "--preset", "smoke", "--vae", str(vae_run / "final"),
           "--out", str(out), "--quiet"]
    env = _env()
    env["KINEMA_TRAIN_DIE_AFTER_CHECKPOINT"] = "2"  # dies like a SIGKILL right after checkpoint 2
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 137, proc.stderr
    assert [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith("step_")] == ["step_00000002"]
    assert main(cmd[3:] + ["--resume"]) == 0
    a, b = _steps(dit_run), _steps(out)
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for ra, rb in zip(a, b):
        assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-5, abs=1e-6)
        assert ra["lr"] == rb["lr"]
    for name in ("model", "ema", "optimizer"):
        wa = load_file(str(dit_run / "checkpoints" / "step_00000004" / f"{name}.safetensors"))
        wb = load_file(str(out / "checkpoints" / "step_00000004" / f"{name}.safetensors"))
        assert wa.keys() == wb.keys()
        for k in wa:
            torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)


def test_dit_resume_mid_log_window_with_pruned_checkpoints(tmp_path, vae_run):
    # killed in the middle of a log window, with the object loss on: the resumed run logs the same loss
    # and loss terms, and it ends cleanly although later checkpoints pruned the one it resumed from
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"steps": 4, "log_every": 2, "checkpoint_every": 1, "keep_checkpoints": 2,
                             "object_loss_weight": 1.0}))
    args = ["train", "dit", "--preset", "smoke", "--config", str(f), "--vae", str(vae_run / "final"), "--quiet"]
    assert main(args + ["--out", str(tmp_path / "whole")]) == 0
    env = _env()
    env["KINEMA_TRAIN_DIE_AFTER_CHECKPOINT"] = "1"
    proc = subprocess.run([sys.executable, "-m", "kinema.cli", *args, "--out", str(tmp_path / "killed")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 137, proc.stderr
    assert main(args + ["--out", str(tmp_path / "killed"), "--resume"]) == 0
    a, b = _steps(tmp_path / "whole"), _steps(tmp_path / "killed")
    assert [r["step"] for r in b] == [2, 4]
    for ra, rb in zip(a, b):
        for key in ("loss", "flow_loss", "object_loss"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-5, abs=1e-6), key
    assert sorted(p.name for p in (tmp_path / "killed" / "checkpoints").iterdir()) == ["step_00000003",
                                                                                      "step_00000004"]


def test_dit_latent_cache(tmp_path, vae_run):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"data": {"latent_cache": True, "latent_cache_batches": 3}, "optim": {"grad_accum": 2}}))
    out = tmp_path / "run"
    assert main(["train", "dit", "--preset", "smoke", "--config", str(f), "--vae", str(vae_run / "final"),
                 "--out", str(out), "--steps", "2", "--quiet"]) == 0
    manifest = json.loads((out / "latent_cache" / "manifest.json").read_text())
    assert manifest["count"] == 3 and manifest["shards"]
    from kinema.data.latent_cache import LatentCache

    cache = LatentCache(out / "latent_cache", seed=0)
    e = cache.batch(0, 1, 0)
    assert e["latents"].shape[1] == 4 and len(e["caption"]) == e["latents"].shape[0]
    assert sorted(cache.order(i) for i in range(3)) == [0, 1, 2]
    assert (out / "final" / "model_index.json").is_file()


def test_group_probability_reaches_the_training_batches_and_the_cache_manifest(tmp_path, vae_run):
    """data.group_probability 1 with two objects a scene: every cached batch holds groups of two
    identical objects, and the cache's manifest names the setting (so a cache built without it is
    not reused)."""
    from kinema.data.latent_cache import LatentCache

    f = tmp_path / "c.json"
    f.write_text(json.dumps({"data": {"latent_cache": True, "latent_cache_batches": 2, "object_weights": [0, 1],
                                      "group_probability": 1.0}}))
    out = tmp_path / "run"
    assert main(["train", "dit", "--preset", "smoke", "--config", str(f), "--vae", str(vae_run / "final"),
                 "--out", str(out), "--steps", "1", "--quiet"]) == 0
    manifest = json.loads((out / "latent_cache" / "manifest.json").read_text())
    assert manifest["key"]["group_probability"] == 1.0
    cache = LatentCache(out / "latent_cache", seed=0)
    for n in range(2):
        captions = cache.entry(n)["caption"]
        assert captions and all("two " in c.lower() for c in captions), captions


def test_latent_cache_encoded_in_chunks_equals_whole_batches(tmp_path, monkeypatch, vae_run):
    """Large batches are encoded a few clips at a time (GPU kernels' index limits); the latents
    must not depend on the chunk."""
    import kinema.train.trainer as trainer
    from kinema.data.latent_cache import LatentCache

    f = tmp_path / "c.json"
    f.write_text(json.dumps({"data": {"latent_cache": True, "latent_cache_batches": 2}}))
    caches = []
    for chunk in (1000, 1):
        monkeypatch.setattr(trainer, "ENCODE_CHUNK", chunk)
        out = tmp_path / f"run{chunk}"
        assert main(["train", "dit", "--preset", "smoke", "--config", str(f), "--vae", str(vae_run / "final"),
                     "--out", str(out), "--steps", "1", "--quiet"]) == 0
        caches.append(LatentCache(out / "latent_cache", seed=0))
    for n in range(2):
        whole, chunked = caches[0].entry(n), caches[1].entry(n)
        assert whole["latents"].shape[0] >= 2 and whole["caption"] == chunked["caption"]
        torch.testing.assert_close(chunked["latents"], whole["latents"], rtol=1e-5, atol=1e-5)


def test_a_shared_latent_cache_is_refused_not_overwritten_when_settings_differ(tmp_path, capsys, vae_run):
    shared = tmp_path / "shared_cache"
    shared.mkdir()
    (shared / "notes.txt").write_text("kept")  # not the cache's: building beside it leaves it alone

    def run(name: str, seed: int) -> int:
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps({"seed": seed, "data": {"latent_cache": True, "latent_cache_batches": 2,
                                                        "latent_cache_dir": str(shared)}}))
        return main(["train", "dit", "--preset", "smoke", "--config", str(f), "--vae", str(vae_run / "final"),
                     "--out", str(tmp_path / name), "--steps", "1", "--quiet"])

    assert run("first", 0) == 0
    built = {p.name: p.stat().st_mtime_ns for p in shared.iterdir()}
    assert "manifest.json" in built and (shared / "notes.txt").read_text() == "kept"
    capsys.readouterr()
    assert run("other_seed", 5) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "data.latent_cache_dir" in err and "seed 0 there, 5 wanted" in err
    assert {p.name: p.stat().st_mtime_ns for p in shared.iterdir()} == built  # untouched
    assert run("same_seed", 0) == 0  # the same settings reuse it
    assert {p.name: p.stat().st_mtime_ns for p in shared.iterdir()} == built


def test_world_stream_interleaved_items_are_pure():
    from kinema.data.world_stream import WorldStream

    ws = WorldStream(buckets=[(32, 32, 5), (48, 32, 1, 3)], batch_size=2, start_index=5, interleave_workers=True,
                     max_objects=1)
    first = next(iter(ws))
    again = WorldStream(buckets=[(32, 32, 5), (48, 32, 1, 3)], batch_size=2, max_objects=1).item(5)
    assert torch.equal(first["video"], again["video"]) and first["caption"] == again["caption"]
    assert first["video"].dim() == 5


def test_time_limit_stops_exports_and_ends_the_schedule(tmp_path):
    cfg = tmp_path / "limit.json"
    cfg.write_text(json.dumps({"time_limit_s": 1.0, "steps": 100000, "checkpoint_every": 100000}))
    out = tmp_path / "run"
    assert main(["train", "vae", "--preset", "smoke", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    steps = _steps(out)
    assert 0 < steps[-1]["step"] < 100000
    assert (out / "final" / "config.json").exists()  # exported although the step count was not reached
    c = resolve("vae", "smoke")
    c.time_limit_s, c.steps = 10.0, 1000
    assert lr_at(c, 10, elapsed=10.0) == pytest.approx(c.optim.lr * c.optim.min_lr_ratio)
    assert lr_at(c, 10, elapsed=0.0) > lr_at(c, 10, elapsed=5.0)


def test_init_starts_from_given_weights(tmp_path, dit_run):
    cfg = tmp_path / "init.json"
    cfg.write_text(json.dumps({"init": str(dit_run / "final"), "steps": 1, "ema_decay": 0.0,
                               "optim": {"lr": 1e-12, "warmup_steps": 0}}))
    out = tmp_path / "tuned"
    vae = dit_run / "final" / "vae"
    assert main(["train", "dit", "--preset", "smoke", "--config", str(cfg), "--vae", str(vae), "--out", str(out),
                 "--quiet"]) == 0
    name = "transformer/diffusion_pytorch_model.safetensors"
    start, tuned = load_file(str(dit_run / "final" / name)), load_file(str(out / "final" / name))
    assert all(torch.allclose(start[k], tuned[k], atol=1e-6) for k in start)
    # --resume with no checkpoint yet starts from the init weights too
    assert main(["train", "dit", "--preset", "smoke", "--config", str(cfg), "--vae", str(vae),
                 "--out", str(tmp_path / "resumed"), "--resume", "--quiet"]) == 0
    resumed = load_file(str(tmp_path / "resumed" / "final" / name))
    assert all(torch.allclose(start[k], resumed[k], atol=1e-6) for k in start)
    # without init the same one step starts from random weights instead
    fresh_cfg = tmp_path / "fresh.json"
    fresh_cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "init": ""}))
    assert main(["train", "dit", "--preset", "smoke", "--config", str(fresh_cfg), "--vae", str(vae),
                 "--out", str(tmp_path / "fresh"), "--quiet"]) == 0
    fresh = load_file(str(tmp_path / "fresh" / "final" / name))
    assert not all(torch.allclose(start[k], fresh[k], atol=1e-6) for k in start)


def test_decoder_only_fine_tune_keeps_the_encoder_and_latent_statistics(tmp_path, capsys, vae_run):
    cfg = tmp_path / "decoder.json"
    cfg.write_text(json.dumps({"init": str(vae_run / "final"), "vae_trainable": "decoder", "steps": 2,
                               "optim": {"lr": 1e-2, "warmup_steps": 0}}))
    out = tmp_path / "decoder"
    assert main(["train", "vae", "--preset", "smoke", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    name = "diffusion_pytorch_model.safetensors"
    start, tuned = load_file(str(vae_run / "final" / name)), load_file(str(out / "final" / name))
    assert all(torch.equal(start[k], tuned[k]) for k in start if k.startswith("encoder."))
    assert not all(torch.allclose(start[k], tuned[k]) for k in start if k.startswith("decoder."))
    kept, before = (json.loads((d / "final" / "config.json").read_text()) for d in (out, vae_run))
    assert (kept["latent_mean"], kept["latent_std"]) == (before["latent_mean"], before["latent_std"])
    # without weights to keep, a decoder-only run is refused before it starts
    cfg.write_text(json.dumps({"vae_trainable": "decoder"}))
    assert main(["train", "vae", "--preset", "smoke", "--config", str(cfg), "--out", str(tmp_path / "none"),
                 "--quiet"]) == 2
    assert "needs `init` weights" in capsys.readouterr().err


def test_decoder_can_learn_the_latents_a_transformer_draws(tmp_path, capsys, dit_run):
    cfg = tmp_path / "regenerated.json"
    cfg.write_text(json.dumps({"init": str(dit_run / "final"), "vae_trainable": "decoder", "steps": 2,
                               "decoder_latents": "regenerated", "regenerate_times": [0.3, 0.6],
                               "optim": {"lr": 1e-2, "warmup_steps": 0}}))
    out = tmp_path / "regenerated"
    assert main(["train", "vae", "--preset", "smoke", "--config", str(cfg), "--out", str(out)]) == 0
    assert f"the decoder learns the latents {dit_run / 'final'}'s transformer draws (t from 0.3 to 0.6" \
        in capsys.readouterr().err
    name = "diffusion_pytorch_model.safetensors"
    start, tuned = load_file(str(dit_run / "final" / "vae" / name)), load_file(str(out / "final" / name))
    assert all(torch.equal(start[k], tuned[k]) for k in start if k.startswith("encoder."))
    assert not all(torch.allclose(start[k], tuned[k]) for k in start if k.startswith("decoder."))


@pytest.mark.parametrize("settings, message", [
    ({"decoder_latents": "generated"}, "decoder_latents: unknown value 'generated'"),
    ({"decoder_latents": "regenerated"}, "it needs stage \"vae\" with vae_trainable \"decoder\""),
    ({"decoder_latents": "regenerated", "vae_trainable": "decoder", "init": "x", "regenerate_times": [0.5, 0.2]},
     "regenerate_times: must be [lo, hi] with 0 < lo <= hi <= 1"),
    ({"decoder_latents": "regenerated", "vae_trainable": "decoder", "init": "x", "regenerate_times": [0, 0.5]},
     "regenerate_times: must be [lo, hi] with 0 < lo <= hi <= 1"),
    ({"decoder_latents": "regenerated", "vae_trainable": "decoder", "init": "x", "regenerate_share": 0},
     "regenerate_share: must be above 0 and at most 1"),
])
def test_regenerated_decoder_latents_settings_are_checked(tmp_path, capsys, settings, message):
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps(settings))
    assert main(["train", "vae", "--preset", "smoke", "--config", str(cfg), "--out", str(tmp_path / "out"),
                 "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_regenerated_latents_come_from_the_transformer(tmp_path):
    """Near t = 0 the transformer gives the clip's latents back; from near noise it draws its own
    (far from them); clips not chosen keep a posterior sample; another latent space is refused."""
    from kinema.layout import LAYOUT_CHANNELS
    from kinema.models.dit import DiTConfig
    from kinema.models.vae import VAEConfig
    from kinema.pipeline import Pipeline
    from kinema.train.components import load_vae
    from kinema.train.regenerate import Regenerator
    from kinema.world.sample import place_objects
    from kinema.world.spec import ObjectSpec, SceneSpec

    folder = tmp_path / "layout-model"
    Pipeline.from_configs(VAEConfig(base_channels=8), DiTConfig(hidden_size=32, depth=2, num_heads=2,
                                                                layout_channels=LAYOUT_CHANNELS + 4),
                          steps=4, size="32x32", guidance=2.0).save_pretrained(folder)
    vae = load_vae(folder / "vae").eval()
    spec = SceneSpec(width=32, height=32, fps=12, num_frames=25, background="navy",
                     objects=[ObjectSpec(shape="circle", color="red", size="large", motion="right")])
    assert place_objects(spec, np.random.default_rng(0))
    window = {**spec.to_dict(), "window_start": 16}
    batch = {"caption": ["a red circle moving left", "a blue star"], "spec": [spec.to_dict(), window]}
    with torch.no_grad():
        mean, logvar = vae.posterior(torch.rand(2, 3, 5, 32, 32) * 2 - 1)

    def remade(times, share, seed=0):
        r = Regenerator(str(folder), vae, times, share, torch.device("cpu"))
        return r(batch, mean, logvar, torch.Generator().manual_seed(seed)), r

    near, r = remade((1e-4, 1e-4), 1.0)
    layout = r._layout(batch["spec"], mean.shape)
    assert layout.shape[:2] == (2, LAYOUT_CHANNELS + 4) and layout[0].abs().sum() > 0 and layout[1].abs().sum() > 0
    assert not torch.equal(layout[0], layout[1])  # the window starts 16 frames on
    std = vae.normalize(mean).std()
    assert (near - mean).abs().max() < 0.01 * mean.abs().max() + 1e-3 * std
    far, _ = remade((0.95, 0.95), 1.0)
    assert (far - mean).abs().mean() > 20 * (near - mean).abs().mean()
    kept, _ = remade((0.95, 0.95), 1e-9)
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(kept, mean + eps * torch.exp(0.5 * logvar))
    other = load_vae(folder / "vae")
    other.set_latent_stats([0.5] * other.config.latent_channels, [2.0] * other.config.latent_channels)
    with pytest.raises(KinemaError, match="regenerate_from: .*its latent statistics differ"):
        Regenerator(str(folder), other, (0.2, 0.5), 1.0, torch.device("cpu"))


def test_decoder_fine_tune_can_grow_the_decoder_from_weights_without_the_extra_blocks(tmp_path, capsys, vae_run):
    cfg = tmp_path / "grown.json"
    cfg.write_text(json.dumps({"init": str(vae_run / "final"), "vae_trainable": "decoder", "steps": 2,
                               "model": {"decoder_extra_blocks": 1}, "optim": {"lr": 1e-2, "warmup_steps": 0}}))
    out = tmp_path / "grown"
    assert main(["train", "vae", "--preset", "smoke", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    name = "diffusion_pytorch_model.safetensors"
    start, tuned = load_file(str(vae_run / "final" / name)), load_file(str(out / "final" / name))
    assert all(torch.equal(start[k], tuned[k]) for k in start if k.startswith("encoder."))
    extra = sorted(set(tuned) - set(start))
    assert extra and all(".blocks.1." in k for k in extra)
    assert any(k.endswith("conv2.conv.weight") and tuned[k].abs().sum() > 0 for k in extra)  # trained away from 0
    assert json.loads((out / "final" / "config.json").read_text())["decoder_extra_blocks"] == 1
    # the grown weights do not fit a run without the extra blocks: an error that names them
    cfg.write_text(json.dumps({"init": str(out / "final"), "vae_trainable": "decoder", "steps": 1}))
    assert main(["train", "vae", "--preset", "smoke", "--config", str(cfg), "--out", str(tmp_path / "shrunk"),
                 "--quiet"]) == 2
    assert "not in this run's model" in capsys.readouterr().err


def test_dit_fine_tune_can_add_frame_position_to_weights_without_it(tmp_path, capsys, dit_run):
    cfg = tmp_path / "placed.json"
    cfg.write_text(json.dumps({"init": str(dit_run / "final"), "steps": 2, "ema_decay": 0.0,
                               "model": {"frame_position": True, "cross_position": True, "text_refiner": 1},
                               "optim": {"lr": 1e-2, "warmup_steps": 0}}))
    out = tmp_path / "placed"
    vae = str(dit_run / "final" / "vae")
    assert main(["train", "dit", "--preset", "smoke", "--config", str(cfg), "--vae", vae, "--out", str(out),
                 "--quiet"]) == 0
    name = "transformer/diffusion_pytorch_model.safetensors"
    start, tuned = load_file(str(dit_run / "final" / name)), load_file(str(out / "final" / name))
    depth = json.loads((dit_run / "final" / "transformer" / "config.json").read_text())["depth"]
    cross = [f"blocks.{i}.cross_pos.{p}" for i in range(depth) for p in ("bias", "weight")]
    added = sorted(set(tuned) - set(start))
    assert sorted(k for k in added if not k.startswith("text_refiner.0.")) == sorted(
        cross + ["frame_pos.proj.bias", "frame_pos.proj.weight"])
    assert "text_refiner.0.qkv.weight" in added and tuned["text_refiner.0.proj.weight"].abs().sum() > 0
    assert tuned["frame_pos.proj.weight"].abs().sum() > 0  # trained away from its zero start
    assert tuned["blocks.0.cross_pos.weight"].abs().sum() > 0
    assert json.loads((out / "final" / "transformer" / "config.json").read_text())["frame_position"] is True
    # weights with the layer do not fit a run without it: an error that names the layer
    cfg.write_text(json.dumps({"init": str(out / "final"), "steps": 1}))
    assert main(["train", "dit", "--preset", "smoke", "--config", str(cfg), "--vae", vae,
                 "--out", str(tmp_path / "unplaced"), "--quiet"]) == 2
    err = capsys.readouterr().err
    named = [k for k in added if f"{k} not in this run's model" in err]
    assert named and len(err.strip().splitlines()) == 1, err


def test_dit_training_draws_timesteps_with_the_configured_shift(tmp_path, monkeypatch, vae_run):
    import kinema.diffusion.flow as flow

    used, real = [], flow.flow_matching_loss_terms

    def spy(*args, **kwargs):
        used.append(kwargs.get("timestep_shift"))
        return real(*args, **kwargs)

    monkeypatch.setattr(flow, "flow_matching_loss_terms", spy)
    for shift in (6.0, 0.0):
        cfg = tmp_path / f"s{shift}.json"
        cfg.write_text(json.dumps({"steps": 1, "timestep_shift": shift}))
        assert main(["train", "dit", "--preset", "smoke", "--config", str(cfg), "--vae", str(vae_run / "final"),
                     "--out", str(tmp_path / f"s{shift}"), "--quiet"]) == 0
    assert used[0] == 6.0 and used[-1] is None  # 0 leaves the token-count rule in charge


def test_guidance_distillation_learns_the_teachers_guided_velocity(tmp_path, capsys, dit_run):
    vae = str(dit_run / "final" / "vae")
    base = {"init": str(dit_run / "final"), "steps": 2, "ema_decay": 0.0, "optim": {"lr": 1e-3, "warmup_steps": 0}}

    def run(name: str, **fields) -> Path:
        cfg = tmp_path / f"{name}.json"
        cfg.write_text(json.dumps({**base, **fields}))
        out = tmp_path / name
        assert main(["train", "dit", "--preset", "smoke", "--config", str(cfg), "--vae", vae, "--out", str(out),
                     "--quiet"]) == 0
        return out

    # The student starts as a copy of the teacher, predicting v_c, so its first loss on the same draws
    # is mean |v_u + g (v_c - v_u) - v_c|^2 = (g - 1)^2 mean |v_c - v_u|^2: 0 at g = 1, 9x g = 2's at g = 4.
    first = {g: _steps(run(f"g{g}", guidance_distill=float(g)))[0]["loss"] for g in (1, 2)}
    out = run("g4", guidance_distill=4.0)
    first[4] = _steps(out)[0]["loss"]
    assert first[1] < 1e-6 * first[2]
    assert first[4] == pytest.approx(9 * first[2], rel=1e-3)
    defaults = json.loads((out / "final" / "model_index.json").read_text())["defaults"]
    assert defaults["guidance"] == 1.0 and defaults["distilled_guidance"] == 4.0
    rc = main(["generate", "a red circle", "--model", str(out / "final"), "-o", str(tmp_path / "d.mp4"),
               "--steps", "2", "--quiet"])
    assert rc == 0 and (tmp_path / "d.mp4").stat().st_size > 0
    # a teacher is needed
    cfg = tmp_path / "no_init.json"
    cfg.write_text(json.dumps({"guidance_distill": 4.0}))
    assert main(["train", "dit", "--preset", "smoke", "--config", str(cfg), "--vae", vae,
                 "--out", str(tmp_path / "none"), "--quiet"]) == 2
    assert "needs `init` weights" in capsys.readouterr().err


def test_ship_model_takes_a_decoder_fine_tune_and_refuses_another_latent_space(tmp_path, dit_run):
    cfg = tmp_path / "decoder.json"
    cfg.write_text(json.dumps({"init": str(dit_run / "final"), "vae_trainable": "decoder", "steps": 2,
                               "optim": {"lr": 1e-2, "warmup_steps": 0}}))
    assert main(["train", "vae", "--preset", "smoke", "--config", str(cfg), "--out", str(tmp_path / "dec"),
                 "--quiet"]) == 0
    cfg.write_text(json.dumps({"steps": 2, "seed": 5}))
    assert main(["train", "vae", "--preset", "smoke", "--config", str(cfg), "--out", str(tmp_path / "other"),
                 "--quiet"]) == 0

    def ship(vae: Path, target: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "scripts" / "ship_model.py"), str(dit_run / "final"),
                               str(tmp_path / target), "--vae", str(vae / "final"), *extra],
                              env=_env(), capture_output=True, text=True)

    done = ship(tmp_path / "dec", "shipped", "--steps", "3", "--sampler", "multistep", "--shift", "6")
    assert done.returncode == 0, done.stderr
    defaults = json.loads((tmp_path / "shipped" / "model_index.json").read_text())["defaults"]
    assert defaults["steps"] == 3 and defaults["sampler"] == "multistep" and defaults["shift"] == 6.0
    no_shift = ship(tmp_path / "dec", "no_shift", "--shift", "0")
    assert no_shift.returncode != 0 and "--shift: must be above 0" in no_shift.stderr
    assert not (tmp_path / "no_shift").exists()
    unknown = ship(tmp_path / "dec", "unknown_sampler", "--sampler", "rk4")
    assert unknown.returncode != 0 and "'rk4' is unknown" in unknown.stderr
    assert not (tmp_path / "unknown_sampler").exists()
    name = "diffusion_pytorch_model.safetensors"
    tuned = load_file(str(tmp_path / "dec" / "final" / name))
    shipped = load_file(str(tmp_path / "shipped" / "vae" / name))
    assert all(torch.equal(shipped[k], tuned[k].half()) for k in tuned)
    refused = ship(tmp_path / "other", "refused")
    assert refused.returncode != 0 and "the transformer would not fit it" in refused.stderr
    assert not (tmp_path / "refused").exists()


def test_init_that_does_not_fit_is_a_clear_error(tmp_path, capsys, vae_run, dit_run):
    vae = str(dit_run / "final" / "vae")
    for init, named in ((vae_run / "final", "not the transformer weights the dit stage needs"),
                        (dit_run / "final", "do not fit")):
        cfg = tmp_path / "init.json"
        cfg.write_text(json.dumps({"init": str(init), "model": {"hidden_size": 64}}))
        rc = main(["train", "dit", "--preset", "smoke", "--config", str(cfg), "--vae", vae,
                   "--out", str(tmp_path / f"o{len(named)}"), "--quiet"])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and named in err, err


def test_dit_object_loss_charges_more_on_the_same_draws_and_needs_world_data(tmp_path, capsys, vae_run):
    vae = str(vae_run / "final")

    def first_loss(name: str, **fields) -> float:
        cfg = tmp_path / f"{name}.json"
        cfg.write_text(json.dumps({"steps": 1, "ema_decay": 0.0, **fields}))
        out = tmp_path / name
        assert main(["train", "dit", "--preset", "smoke", "--config", str(cfg), "--vae", vae, "--out", str(out),
                     "--quiet"]) == 0
        return _steps(out)[0]

    plain, weighted = first_loss("plain"), first_loss("objects", object_loss_weight=1.0)
    assert weighted["loss"] > plain["loss"]  # the same draws, plus a non-negative term over the objects
    # the log keeps the terms apart: the flow term is the plain run's loss, so curves stay comparable
    assert "flow_loss" not in plain and "object_loss" not in plain
    assert weighted["flow_loss"] == pytest.approx(plain["loss"], rel=1e-6)
    assert weighted["object_loss"] > 0
    assert weighted["loss"] == pytest.approx(weighted["flow_loss"] + weighted["object_loss"], rel=1e-6)
    # balanced: the same flow term and draws, the object positions weighed otherwise
    balanced = first_loss("balanced", object_loss_weight=1.0, object_loss_balance=True)
    assert balanced["flow_loss"] == pytest.approx(plain["loss"], rel=1e-6)
    assert balanced["object_loss"] > 0 and balanced["object_loss"] != pytest.approx(weighted["object_loss"], rel=1e-4)
    cfg = tmp_path / "folder.json"
    cfg.write_text(json.dumps({"object_loss_weight": 1.0, "data": {"source": str(tmp_path)}}))
    assert main(["train", "dit", "--preset", "smoke", "--config", str(cfg), "--vae", vae,
                 "--out", str(tmp_path / "none"), "--quiet"]) == 2
    assert "object_loss_weight" in capsys.readouterr().err


def test_non_finite_gradients_skip_the_step_and_then_stop_the_run(tmp_path, capsys, monkeypatch, vae_run):
    from kinema.train.trainer import MAX_BAD_STEPS, Trainer

    real = Trainer._loss
    calls = {"n": 0}

    def poisoned(self, batch, bad):
        loss, n, parts = real(self, batch)
        calls["n"] += 1
        return (loss * float("nan") if bad(calls["n"]) else loss), n, parts

    # two NaN steps among good ones: skipped, the weights stay finite, every logged loss is finite
    monkeypatch.setattr(Trainer, "_loss", lambda self, batch: poisoned(self, batch, lambda k: k in (2, 3)))
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"steps": 4, "log_every": 1, "checkpoint_every": 1}))
    out = tmp_path / "some_bad"
    assert main(["train", "vae", "--preset", "smoke", "--config", str(cfg), "--out", str(out)]) == 0
    assert "step 2: gradients not finite" in capsys.readouterr().err
    assert [r["step"] for r in _steps(out)] == [1, 2, 3, 4] and calls["n"] == 6
    assert all(r["loss"] == r["loss"] and r["grad_norm"] == r["grad_norm"] for r in _steps(out))
    weights = load_file(str(out / "final" / "diffusion_pytorch_model.safetensors"))
    assert all(torch.isfinite(t).all() for t in weights.values())

    # NaN from step 3 on: the run stops with one clear line after MAX_BAD_STEPS tries, and its last
    # checkpoint (step 2) is intact, so the run can be resumed after the fix
    calls["n"] = 0
    monkeypatch.setattr(Trainer, "_loss", lambda self, batch: poisoned(self, batch, lambda k: k >= 3))
    out = tmp_path / "all_bad"
    assert main(["train", "vae", "--preset", "smoke", "--config", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"not finite at {MAX_BAD_STEPS} steps in a row (from step 3)" in err and "precision" in err
    assert calls["n"] == 2 + MAX_BAD_STEPS
    assert [r["step"] for r in _steps(out)] == [1, 2]


def test_size_weights_are_checked():
    import pytest as _pytest

    from kinema.errors import KinemaError
    from kinema.train.config import resolve

    assert resolve("vae", "tiny", overrides={"data": {"size_weights": [3, 1]}}).data.size_weights == [3, 1]
    for bad in ([1, 1, 1], [1, -1], [0, 0]):
        with _pytest.raises(KinemaError, match="data.size_weights"):
            resolve("vae", "tiny", overrides={"data": {"size_weights": bad}})


def test_shape_weights_are_checked():
    import pytest as _pytest

    from kinema.errors import KinemaError
    from kinema.train.config import resolve

    assert resolve("vae", "tiny", overrides={"data": {"shape_weights": [1, 1, 1, 2]}}).data.shape_weights == [1, 1, 1, 2]
    for bad in ([1, 1, 1], [1, 1, 1, -1], [0, 0, 0, 0], [1, 1, 1, float("nan")]):
        with _pytest.raises(KinemaError, match="data.shape_weights"):
            resolve("vae", "tiny", overrides={"data": {"shape_weights": bad}})


def test_window_of_frames_is_checked():
    import pytest as _pytest

    from kinema.errors import KinemaError
    from kinema.train.config import resolve

    assert resolve("vae", "tiny", overrides={"data": {"window_of_frames": 25}}).data.window_of_frames == 25
    for bad in (1, -3):
        with _pytest.raises(KinemaError, match="data.window_of_frames: must be an integer"):
            resolve("vae", "tiny", overrides={"data": {"window_of_frames": bad}})
    with _pytest.raises(KinemaError, match="autoencoder stage"):
        resolve("dit", "tiny", overrides={"data": {"window_of_frames": 25}})
    with _pytest.raises(KinemaError, match="a folder's clips"):
        resolve("vae", "tiny", overrides={"data": {"window_of_frames": 25, "source": "/some/folder"}})


def test_object_weights_are_checked_against_max_objects():
    import pytest as _pytest

    from kinema.errors import KinemaError
    from kinema.train.config import resolve

    assert resolve("dit", "smoke", overrides={"data": {"object_weights": [0, 1]}}).data.object_weights == [0, 1]
    with _pytest.raises(KinemaError, match="data.object_weights"):
        resolve("dit", "smoke", overrides={"data": {"object_weights": [0, 1, 0]}})  # smoke: max_objects 2
    with _pytest.raises(KinemaError, match="data.object_weights"):
        resolve("dit", "tiny", overrides={"data": {"object_weights": [0, -1, 0]}})


def test_relation_captions_option_is_checked():
    from kinema.errors import KinemaError
    from kinema.train.config import resolve

    assert resolve("dit", "tiny", overrides={"data": {"relation_captions": False}}).data.relation_captions is False
    assert resolve("dit", "tiny").data.relation_captions is True
    with pytest.raises(KinemaError, match="data.relation_captions"):
        resolve("dit", "tiny", overrides={"data": {"relation_captions": "no"}})
    with pytest.raises(KinemaError, match="data.relation_captions"):
        resolve("dit", "tiny", overrides={"data": {"relation_captions": False, "source": "/tmp/clips"}})


def test_group_probability_is_checked():
    import pytest as _pytest

    from kinema.errors import KinemaError
    from kinema.train.config import resolve

    assert resolve("dit", "tiny", overrides={"data": {"group_probability": 0.2}}).data.group_probability == 0.2
    for bad in (-0.5, 2):
        with _pytest.raises(KinemaError, match="data.group_probability"):
            resolve("dit", "tiny", overrides={"data": {"group_probability": bad}})


def test_resume_accepts_a_run_begun_before_a_config_field_existed(tmp_path):
    """A run saved by an older kinema lacks fields added since; it ran with their defaults, so
    resuming it with the defaults is the same run, and anything else is still refused."""
    from kinema.train import checkpoint as ckpt

    out = tmp_path / "old"
    assert main(["train", "vae", "--preset", "smoke", "--out", str(out), "--quiet"]) == 0
    for _, path in ckpt.list_checkpoints(out):
        state = ckpt.read_json(path / ckpt.STATE_FILE)
        del state["config"]["shape_loss_weight"], state["config"]["data"]["window_of_frames"]
        (path / ckpt.STATE_FILE).write_text(json.dumps(state))
    assert main(["train", "vae", "--preset", "smoke", "--out", str(out), "--resume", "--steps", "6", "--quiet"]) == 0
    assert _steps(out)[-1]["step"] == 6
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"shape_loss_weight": 0.01}))
    with pytest.raises(KinemaError, match="shape_loss_weight differs"):
        from kinema.train.trainer import train

        train(resolve("vae", "smoke", str(f), {"out": str(out), "steps": 8}), resume=True, quiet=True)


def test_weights_scope_is_checked():
    import pytest as _pytest

    from kinema.errors import KinemaError
    from kinema.train.config import resolve

    assert resolve("dit", "tiny").data.weights_scope == "all"
    assert resolve("dit", "tiny", overrides={"data": {"weights_scope": "distinct"}}).data.weights_scope == "distinct"
    with _pytest.raises(KinemaError, match="data.weights_scope: weights scope: unknown value 'pairs'"):
        resolve("dit", "tiny", overrides={"data": {"weights_scope": "pairs"}})
    with _pytest.raises(KinemaError, match="data.weights_scope: weights scope: unknown value ''"):
        resolve("dit", "tiny", overrides={"data": {"weights_scope": ""}})  # empty is no scope, not the default


def test_bf16_training_is_refused_on_a_cpu_that_only_emulates_it(tmp_path, capsys, monkeypatch):
    from kinema.train.trainer import Trainer

    cfg = tmp_path / "bf16.json"
    cfg.write_text(json.dumps({"steps": 1, "precision": "bf16"}))
    monkeypatch.setattr("kinema.train.trainer.cpu_has_native_bf16", lambda: False)
    out = tmp_path / "o"
    assert main(["train", "vae", "--preset", "smoke", "--config", str(cfg), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "precision" in err and "native bf16" in err and '"fp32"' in err
    assert not (out / "checkpoints").exists()
    # where the CPU has it, the same config trains under bf16 autocast; fp32 and auto never ask
    monkeypatch.setattr("kinema.train.trainer.cpu_has_native_bf16", lambda: True)
    assert Trainer(resolve("vae", "smoke", str(cfg), {"out": str(out)}), quiet=True).amp_dtype == torch.bfloat16
    monkeypatch.setattr("kinema.train.trainer.cpu_has_native_bf16", lambda: False)
    for precision in ("fp32", "auto"):
        cfg.write_text(json.dumps({"steps": 1, "precision": precision}))
        assert Trainer(resolve("vae", "smoke", str(cfg), {"out": str(out)}), quiet=True).amp_dtype is None


def test_a_resumed_run_may_change_its_time_limit(tmp_path, capsys):
    """How long a run trains is not what it learns from: --time-limit on --resume moves the cosine's end
    (a CPU run cut short at the end of a working session); a change to what it learns from is still
    refused (test_resume_accepts_a_run_begun_before_a_config_field_existed)."""
    from kinema.train import checkpoint as ckpt

    out = tmp_path / "run"
    assert main(["train", "vae", "--preset", "smoke", "--out", str(out), "--time-limit", "3600"]) == 0
    first = _steps(out)
    log = capsys.readouterr().err  # a timed run's log lines say how much of its time is spent
    assert f"step {first[-1]['step']}/" in log and re.search(r"samples/s psnr [\d.]+, \d+\.\d of 60 min", log)
    assert main(["train", "vae", "--preset", "smoke", "--out", str(out), "--resume", "--steps", "6",
                 "--time-limit", "7200", "--quiet"]) == 0
    steps = _steps(out)
    assert steps[-1]["step"] == 6 and len(steps) > len(first)
    latest = ckpt.list_checkpoints(out)[-1][1]
    assert ckpt.read_json(latest / ckpt.STATE_FILE)["config"]["time_limit_s"] == 7200
    capsys.readouterr()
    assert main(["train", "vae", "--preset", "smoke", "--out", str(out), "--resume", "--time-limit", "-5"]) != 0
    assert "--time-limit must be a positive number of seconds, got -5" in capsys.readouterr().err
    assert main(["train", "planner", "--out", str(tmp_path / "p"), "--time-limit", "60"]) != 0
    assert "--time-limit is not for `kinema train planner`" in capsys.readouterr().err


def test_a_negative_time_limit_in_a_config_is_refused(tmp_path):
    from kinema.errors import KinemaError
    from kinema.train.config import resolve

    f = tmp_path / "c.json"
    f.write_text(json.dumps({"time_limit_s": -1}))
    with pytest.raises(KinemaError, match="time_limit_s: must be 0 \\(none\\) or a positive number"):
        resolve("vae", "smoke", str(f))
