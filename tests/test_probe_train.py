"""benchmarks/probe_train.py and motion_words.py --swapped / --rename-word: training on h/w-swapped
latents or renamed caption words, and probing such a model."""

import json

import pytest
import torch
from conftest import ROOT, load_script

from kinema.data.latent_cache import LatentCache

SHIPPED = str(ROOT / "src" / "kinema" / "weights" / "kinema-tiny")


def test_training_reads_every_cache_entry_changed(tmp_path, monkeypatch):
    monkeypatch.setattr(LatentCache, "entry", LatentCache.entry)  # the patch below is undone after the test
    mod = load_script("benchmarks/probe_train.py")
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"steps": 2, "data": {"buckets": [[32, 32, 5]], "latent_cache": True,
                                                    "latent_cache_batches": 2}}))
    out = tmp_path / "run"
    assert mod.main(["--swap-hw", "--preset", "smoke", "--config", str(cfg), "--vae", SHIPPED, "--out", str(out),
                     "--rename-word", "left=west", "--rename-word=right=east", "--quiet"]) == 0
    assert (out / "final" / "transformer" / "config.json").exists()
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2]

    cache = LatentCache(out / "latent_cache")
    changed = [cache.entry(n) for n in range(len(cache))]
    plain = [LatentCache.entry.unchanged(cache, n) for n in range(len(cache))]
    for a, b in zip(changed, plain):
        assert torch.equal(a["latents"], b["latents"].transpose(-1, -2))
        assert a["caption"] == [mod.rename_words(c, {"left": "west", "right": "east"}) for c in b["caption"]]
    words = " ".join(c for item in changed for c in item["caption"]).split()
    assert "left" not in words and "right" not in words


def test_rename_words_swaps_whole_words_at_once():
    mod = load_script("benchmarks/probe_train.py")
    assert mod.rename_words("A red circle moves Left, brightly right of it", {"left": "west", "right": "east"}) \
        == "A red circle moves west, brightly east of it"
    assert mod.rename_words("left of right", {"left": "right", "right": "left"}) == "right of left"
    assert mod.parse_renames(["Left=West"]) == {"left": "west"}
    for bad in ("left", "left=", "=west", "left=two words"):
        with pytest.raises(ValueError, match="OLD=NEW"):
            mod.parse_renames([bad])


def test_training_refuses_runs_it_cannot_swap(tmp_path):
    mod = load_script("benchmarks/probe_train.py")
    out = ["--out", str(tmp_path / "run")]
    with pytest.raises(SystemExit, match="give --swap-hw or --rename-word"):
        mod.main(["--preset", "smoke", *out])
    with pytest.raises(SystemExit, match="OLD=NEW"):
        mod.main(["--rename-word", "left", "--preset", "smoke", *out])
    out = ["--swap-hw", *out]
    with pytest.raises(SystemExit, match="--config"):
        mod.main(["--preset", "smoke", *out])
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"data": {"buckets": [[32, 32, 5]]}}))
    with pytest.raises(SystemExit, match="latent_cache must be true"):
        mod.main(["--preset", "smoke", "--config", str(cfg), *out])
    cfg.write_text(json.dumps({"data": {"buckets": [[32, 32, 5], [48, 32, 5]], "latent_cache": True}}))
    with pytest.raises(SystemExit, match=r"needs every data.buckets entry square; \[\[48, 32, 5\]\]"):
        mod.main(["--preset", "smoke", "--config", str(cfg), *out])
    cfg.write_text(json.dumps({"data": {"buckets": "none"}}))
    with pytest.raises(SystemExit, match="probe_train: .*buckets"):
        mod.main(["--preset", "smoke", "--config", str(cfg), *out])
    assert not (tmp_path / "run").exists()


def test_a_swapped_model_runs_as_swap_f_swap():
    from kinema.models.dit import DiTConfig
    from kinema.models.text import TextEncoder
    from kinema.models.vae import VAEConfig
    from kinema.pipeline import Pipeline

    mod = load_script("benchmarks/motion_words.py")
    pipe = Pipeline.from_configs(VAEConfig(base_channels=8), DiTConfig(hidden_size=32, depth=2, num_heads=2),
                                 text_encoder=TextEncoder.from_pretrained(), seed=0, steps=2, fps=8.0, seconds=1.0)
    dit = pipe.transformer.eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # the output layer starts at zero: give every weight a value
        for p in dit.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    x = torch.randn(1, dit.config.in_channels, 3, 4, 6, generator=gen)
    states, mask = pipe.text_encoder.encode(["a red circle moves left"])
    t = torch.full((1, 3), 0.5)
    with torch.no_grad():
        plain = dit(x, t, states, mask)
        swapped_by_hand = dit(x.transpose(-1, -2), t, states, mask).transpose(-1, -2)
        mod.run_swapped(pipe)
        swapped = dit(x, t, states, mask)
    assert swapped.shape == x.shape
    assert torch.allclose(swapped, swapped_by_hand, atol=1e-6)
    assert not torch.allclose(swapped, plain, atol=1e-3)  # the model is not symmetric in h and w


def test_motion_words_writes_renamed_prompts(monkeypatch):
    mod = load_script("benchmarks/motion_words.py")
    spec = mod.scenes(1, seed=0, width=64, height=64)[0]
    plain = mod.prompt(spec, "left")
    monkeypatch.setitem(mod.RENAMES, "left", "west")
    assert mod.prompt(spec, "left") == plain.replace("left", "west") and "west" in mod.prompt(spec, "left")
    assert "west" not in mod.prompt(spec, "up") and "left" not in mod.prompt(spec, "up")
