"""Pipeline: save/load, errors, determinism, sizes, frame counts, inputs, progress, metadata."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import kinema
from kinema import Video
from kinema.errors import KinemaError
from kinema.models.dit import DiTConfig
from kinema.models.text import TextEncoder
from kinema.models.vae import VAEConfig
from kinema.pipeline import Pipeline, parse_size

PROMPT = "a small blue square moves up on a sand background"


def wake(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


@pytest.fixture(scope="module")
def te():
    return TextEncoder.from_pretrained()


@pytest.fixture(scope="module")
def pipe(te):
    p = Pipeline.from_configs(VAEConfig(base_channels=8), DiTConfig(hidden_size=32, depth=2, num_heads=2),
                              text_encoder=te, seed=0, steps=2, max_latent_frames=4, size="32x32",
                              model_name="tiny-test")
    wake(p.transformer)
    return p


@pytest.fixture(scope="module")
def saved(pipe, tmp_path_factory):
    return pipe.save_pretrained(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="module")
def loaded(saved, te, monkeypatch_module):
    monkeypatch_module.setattr(TextEncoder, "from_pretrained", classmethod(lambda cls, *a, **k: te))
    return Pipeline.from_pretrained(saved)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def gen(p, **kw):
    kw.setdefault("num_frames", 5)
    kw.setdefault("progress", False)
    return p.generate(kw.pop("prompt", PROMPT), **kw)


# ----- save / load -------------------------------------------------------------------------------


def test_saved_folder_layout(saved):
    index = json.loads((saved / "model_index.json").read_text())
    assert index["defaults"]["model_name"] == "tiny-test" and index["defaults"]["steps"] == 2
    for comp in ("vae", "transformer"):
        assert (saved / comp / "config.json").is_file()
        assert list((saved / comp).glob("*.safetensors"))
    te_cfg = json.loads((saved / "text_encoder" / "config.json").read_text())
    assert te_cfg["max_length"] == 32
    assert not [p for p in (saved / "text_encoder").iterdir() if p.name != "config.json"]  # no copied weights
    assert not [p for p in saved.parent.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_round_trip_gives_identical_outputs(pipe, loaded):
    a = gen(pipe, seed=3)
    b = gen(loaded, seed=3)
    assert np.array_equal(a.frames, b.frames)
    assert b.metadata["model"] == "tiny-test"
    assert loaded.config["max_latent_frames"] == 4


def test_save_over_an_existing_folder(pipe, tmp_path):
    target = tmp_path / "m"
    pipe.save_pretrained(target)
    (target / "stale.txt").write_text("old")
    pipe.save_pretrained(target)
    assert not (target / "stale.txt").exists() and (target / "model_index.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_saved_folder_gets_the_usual_permissions(pipe, tmp_path):
    import os

    old = os.umask(0o022)
    try:
        target = pipe.save_pretrained(tmp_path / "m")
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o755
    files = [p for p in target.rglob("*") if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files)  # safetensors itself writes 0600
    assert {p.stat().st_mode & 0o777 for p in files} == {0o644}


def _copy(saved, tmp_path):
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(saved, dst)
    return dst


def test_missing_folder_raises(tmp_path):
    with pytest.raises(KinemaError, match="does not exist"):
        Pipeline.from_pretrained(tmp_path / "nowhere")


def test_corrupt_safetensors_raises(saved, tmp_path, loaded):
    d = _copy(saved, tmp_path)
    f = next((d / "transformer").glob("*.safetensors"))
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(KinemaError, match="transformer.*safetensors"):
        Pipeline.from_pretrained(d)
    f.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(KinemaError, match="transformer.*safetensors"):
        Pipeline.from_pretrained(d)


def test_mismatched_config_raises(saved, tmp_path, loaded):
    d = _copy(saved, tmp_path)
    cfg = json.loads((d / "transformer" / "config.json").read_text())
    cfg["hidden_size"] = 64
    (d / "transformer" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(KinemaError, match="transformer.*do not match.*wrong shape"):
        Pipeline.from_pretrained(d)
    cfg["hidden_size"], cfg["depth"] = 32, 3
    (d / "transformer" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(KinemaError, match="transformer.*missing"):
        Pipeline.from_pretrained(d)
    cfg["depth"], cfg["bogus"] = 2, 1
    (d / "transformer" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(KinemaError, match="transformer.*bogus"):
        Pipeline.from_pretrained(d)


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
def test_non_finite_weights_raise(saved, tmp_path, loaded, bad_value):
    from safetensors.torch import load_file, save_file

    d = _copy(saved, tmp_path)
    f = next((d / "vae").glob("*.safetensors"))
    state = load_file(str(f))
    name = sorted(k for k, v in state.items() if v.is_floating_point() and v.numel() > 4)[0]
    state[name] = state[name].clone()
    state[name].view(-1)[3] = bad_value
    save_file(state, str(f))
    with pytest.raises(KinemaError, match=f"vae: .*NaN or infinite.*{name}"):
        Pipeline.from_pretrained(d)


def test_loading_skips_random_init_and_restores_it(saved, loaded):
    """Weights come from the file alone, and torch's initialisers work again after loading."""
    from kinema.models.loading import all_finite, skip_weight_init

    with skip_weight_init():
        assert torch.nn.init.normal_(torch.zeros(8)).eq(0).all()
    assert not torch.nn.init.normal_(torch.zeros(8)).eq(0).all()
    # overlapping entries (two threads loading at once) leave torch's initialisers as they were
    outer, inner = skip_weight_init(), skip_weight_init()
    outer.__enter__()
    inner.__enter__()
    outer.__exit__(None, None, None)
    assert torch.nn.init.normal_(torch.zeros(8)).eq(0).all()
    inner.__exit__(None, None, None)
    assert not torch.nn.init.normal_(torch.zeros(8)).eq(0).all()
    assert all(p.dtype == torch.float32 for p in loaded.transformer.parameters())
    assert not all_finite(torch.tensor([1.0, float("nan")], dtype=torch.float16))
    assert all_finite(torch.tensor([3e38, 3e38]))  # the sum overflows, the exact test clears it
    assert all_finite(torch.tensor([], dtype=torch.float16))


def test_bf16_on_a_cpu_that_only_emulates_it_warns(monkeypatch):
    import warnings

    from kinema.pipeline import decode_dtype, denoise_dtype

    cpu = torch.device("cpu")
    monkeypatch.setattr("kinema.pipeline.cpu_has_native_bf16", lambda: False)
    for pick, setting in ((decode_dtype, "decode_precision"), (denoise_dtype, "denoise_precision")):
        with pytest.warns(RuntimeWarning, match=f"{setting} bf16: this CPU has no native bf16"):
            assert pick("bf16", cpu) == torch.bfloat16
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert pick("auto", cpu) == torch.float32 and pick("fp32", cpu) == torch.float32
    monkeypatch.setattr("kinema.pipeline.cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decode_dtype("bf16", cpu) == torch.bfloat16 == denoise_dtype("bf16", cpu)
        # native bf16 (AMX or AVX512-BF16): auto picks it for both
        assert decode_dtype("auto", cpu) == torch.bfloat16 == denoise_dtype("auto", cpu)


def test_decode_precision_settings():
    from kinema.pipeline import decode_dtype

    cpu = torch.device("cpu")
    assert decode_dtype("fp32", cpu) == torch.float32 and decode_dtype("bf16", cpu) == torch.bfloat16
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert decode_dtype("auto", cpu) == (torch.bfloat16 if native else torch.float32)
    with pytest.raises(KinemaError, match="decode_precision"):
        decode_dtype("fp8", cpu)
    with pytest.raises(KinemaError, match="decode_precision"):  # refused when the pipeline is built
        Pipeline.from_configs(VAEConfig(base_channels=8), DiTConfig(hidden_size=32, depth=2, num_heads=2),
                              text_encoder=TextEncoder.from_pretrained(), decode_precision="fp8")


def test_bf16_decode_stays_close_to_fp32(pipe, monkeypatch):
    videos = {}
    for precision in ("fp32", "bf16"):
        monkeypatch.setitem(pipe.config, "decode_precision", precision)
        videos[precision] = np.asarray(gen(pipe, seed=3).frames, dtype=np.float32)
    diff = np.abs(videos["fp32"] - videos["bf16"])
    assert diff.mean() < 1.0 and diff.max() <= 32  # in 0-255 levels: rounding, not another picture


def test_denoise_precision_settings():
    from kinema.cpu_features import cpu_has_native_bf16
    from kinema.pipeline import denoise_dtype

    cpu = torch.device("cpu")
    assert denoise_dtype("fp32", cpu) == torch.float32 and denoise_dtype("bf16", cpu) == torch.bfloat16
    assert denoise_dtype("auto", cpu) == (torch.bfloat16 if cpu_has_native_bf16() else torch.float32)
    assert denoise_dtype("auto", torch.device("cuda")) == torch.float32
    with pytest.raises(KinemaError, match="denoise_precision"):
        denoise_dtype("half", cpu)
    with pytest.raises(KinemaError, match="denoise_precision"):  # refused when the pipeline is built
        Pipeline.from_configs(VAEConfig(base_channels=8), DiTConfig(hidden_size=32, depth=2, num_heads=2),
                              text_encoder=TextEncoder.from_pretrained(), denoise_precision="half")


def test_bf16_denoising_stays_close_to_fp32(pipe, monkeypatch):
    import kinema.diffusion.sampling as sampling_module

    dtypes = []
    real_sample = sampling_module.sample

    def spy(*a, **kw):
        dtypes.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else torch.float32)
        return real_sample(*a, **kw)

    monkeypatch.setattr("kinema.pipeline.sample", spy)
    monkeypatch.setitem(pipe.config, "decode_precision", "fp32")
    videos, batched = {}, {}
    for precision in ("fp32", "bf16"):
        monkeypatch.setitem(pipe.config, "denoise_precision", precision)
        videos[precision] = np.asarray(gen(pipe, seed=3).frames, dtype=np.float32)
        # kinema eval's batched path too
        batched[precision] = np.asarray(pipe.generate_batch([PROMPT], seeds=[3], num_frames=5)[0].frames,
                                        dtype=np.float32)
    assert dtypes == [torch.float32, torch.float32, torch.bfloat16, torch.bfloat16]
    for v in (videos, batched):
        diff = np.abs(v["fp32"] - v["bf16"])
        assert 0 < diff.mean() < 2.0  # in 0-255 levels: rounding, not another picture
    assert np.abs(batched["bf16"] - videos["bf16"]).mean() < 2.0


def test_missing_files_raise(saved, tmp_path, loaded):
    d = _copy(saved, tmp_path)
    next((d / "vae").glob("*.safetensors")).unlink()
    with pytest.raises(KinemaError, match="vae: no .safetensors"):
        Pipeline.from_pretrained(d)
    (d / "model_index.json").unlink()
    with pytest.raises(KinemaError, match="model_index.json"):
        Pipeline.from_pretrained(d)


def test_default_model_not_shipped_raises(monkeypatch, tmp_path):
    import kinema.pipeline as kp

    monkeypatch.setattr(kp, "DEFAULT_MODEL_DIR", tmp_path / "kinema-tiny")
    with pytest.raises(KinemaError, match="not shipped"):
        Pipeline.from_pretrained()
    assert kinema.load_pipeline.__func__ is Pipeline.from_pretrained.__func__


# ----- determinism -----------------------------------------------------------------------------


def test_same_seed_same_video_different_seed_different(pipe):
    a, b, c = gen(pipe, seed=1), gen(pipe, seed=1), gen(pipe, seed=2)
    assert np.array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, c.frames)


def test_prompt_and_negative_prompt_matter(pipe):
    a = gen(pipe, seed=1)
    b = gen(pipe, seed=1, prompt="two white stars")
    c = gen(pipe, seed=1, negative_prompt="blurry")
    assert not np.array_equal(a.frames, b.frames) and not np.array_equal(a.frames, c.frames)


# ----- sizes, frame counts, prompts -----------------------------------------------------------


@pytest.mark.parametrize("size,expected", [("40x36", (36, 40)), ((48, 32), (32, 48)), ("33X47", (47, 33))])
def test_any_size_is_exact(pipe, size, expected):
    v = gen(pipe, size=size, num_frames=2)
    assert v.frames.shape == (2, *expected, 3)


@pytest.mark.parametrize("size", ["16x16", "2000x64", "abc", "64x", "64x64x3", (10, 64), "-64x64"])
def test_bad_sizes_raise(pipe, size):
    with pytest.raises(KinemaError, match="size"):
        gen(pipe, size=size)


@pytest.mark.parametrize("n", [1, 2, 4, 6, 7, 13, 14])
def test_frame_counts_are_exact(pipe, n):
    assert gen(pipe, num_frames=n).num_frames == n


def test_seconds_times_fps(pipe):
    v = gen(pipe, num_frames=None, seconds=0.5, fps=14)
    assert v.num_frames == 7 and v.fps == 14
    with pytest.raises(KinemaError, match="seconds"):
        gen(pipe, num_frames=None, seconds=-1)
    with pytest.raises(KinemaError, match="either"):
        gen(pipe, num_frames=5, seconds=1)
    with pytest.raises(KinemaError, match="num_frames"):
        gen(pipe, num_frames=0)


@pytest.mark.parametrize("prompt", ["", "   ", "x" * 1001])
def test_bad_prompts_raise(pipe, prompt):
    with pytest.raises(KinemaError, match="prompt"):
        gen(pipe, prompt=prompt)


def test_bad_settings_raise(pipe):
    for kw, word in [({"steps": 0}, "steps"), ({"guidance": float("nan")}, "guidance"), ({"sampler": "ddim"}, "sampler"),
                     ({"mode": "teleport"}, "mode"), ({"mode": "connect", "video": np.zeros((5, 32, 32, 3), np.uint8)}, "end_video"),
                     ({"mode": "edit"}, "video"), ({"strength": 0}, "strength"), ({"seed": -1}, "seed"),
                     ({"image": "/no/such/image.png"}, "does not exist"), ({"image": np.zeros((4, 4))}, "image"),
                     ({"shift": 0}, "shift"), ({"shift": -2.0}, "shift"), ({"shift": float("nan")}, "shift")]:
        with pytest.raises(KinemaError, match=word):
            gen(pipe, **kw)


# ----- inputs ------------------------------------------------------------------------------------


def _half_image(w=64, h=32):
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 4] = (255, 0, 0)  # left quarter red, cut away by a centre crop to a square
    img[:, w // 4: 3 * w // 4] = (0, 200, 0)
    img[:, 3 * w // 4:] = (0, 0, 255)
    return img


def test_image_inputs_of_every_kind_are_cropped_to_the_aspect(pipe, tmp_path):
    img = _half_image()
    path = tmp_path / "in.png"
    Image.fromarray(img).save(path)
    outs = [gen(pipe, image=x, num_frames=3) for x in (img, Image.fromarray(img), str(path), path, Video(img))]
    first = outs[0].frames[0]
    assert first.shape == (32, 32, 3)
    # centre crop of a 2:1 image to a square keeps only the green middle
    assert np.abs(first.astype(int) - np.array([0, 200, 0])).max() <= 2
    for o in outs[1:]:
        assert np.array_equal(o.frames, outs[0].frames)


def test_video_inputs_from_files_and_arrays(pipe, tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (5, 48, 48, 3), dtype=np.uint8)
    path = tmp_path / "clip.gif"
    Video(frames, fps=10).save(path)
    v = gen(pipe, video=path, num_frames=4)
    assert v.num_frames == 9 and v.fps == pytest.approx(10, rel=0.05)
    w = gen(pipe, video=frames, num_frames=4, fps=8)
    assert w.num_frames == 9 and w.fps == 8 and w.frames.shape[1:] == (32, 32, 3)


# ----- progress, metadata, timings -----------------------------------------------------------------


def test_progress_callback_counts_every_step(pipe):
    seen = []
    gen(pipe, num_frames=14, steps=3, progress=lambda i, n: seen.append((i, n)))
    total = seen[0][1]
    assert [i for i, _ in seen] == list(range(1, total + 1)) and all(n == total for _, n in seen)
    assert total == 3 * len(pipe.last_windows) and len(pipe.last_windows) >= 2


def test_progress_bar(pipe, capsys):
    gen(pipe, progress=True)
    assert "step" in capsys.readouterr().err


def test_metadata_and_timings(pipe):
    v = gen(pipe, seed=7, negative_prompt="noise")
    md = v.metadata
    assert md["prompt"] == PROMPT and md["seed"] == 7 and md["mode"] == "t2v" and md["model"] == "tiny-test"
    assert md["negative_prompt"] == "noise" and md["size"] == "32x32" and md["num_frames"] == 5
    json.dumps(md)
    assert {"text", "plan", "denoise", "decode"} <= set(pipe.last_timings)


def test_metadata_does_not_claim_a_negative_prompt_that_was_never_read(pipe):
    """Guidance 1 makes one conditional call a step, so the record (and the provenance built
    from it) moves the negative prompt to `negative_prompt_unused` instead of claiming it steered."""
    plain = gen(pipe, seed=3, guidance=1.0)
    unused = gen(pipe, seed=3, guidance=1.0, negative_prompt="noise")
    assert np.array_equal(plain.frames, unused.frames)  # indeed nothing read it
    assert unused.metadata["negative_prompt"] is None and unused.metadata["negative_prompt_unused"] == "noise"
    used = gen(pipe, seed=3, guidance=3.0, negative_prompt="noise")
    assert used.metadata["negative_prompt"] == "noise" and "negative_prompt_unused" not in used.metadata


def test_shift_reaches_the_sampler_and_the_metadata(pipe, monkeypatch):
    import kinema.pipeline as pipeline_module

    used = []
    real_sample = pipeline_module.sample
    monkeypatch.setattr(pipeline_module, "sample", lambda *a, **k: used.append(k["shift"]) or real_sample(*a, **k))
    auto = gen(pipe)
    shifted = gen(pipe, shift=6.0)
    assert used[1] == 6.0 and used[0] == pytest.approx(pipe._shift(2, 4, 4, None))
    assert auto.metadata["shift"] is None and shifted.metadata["shift"] == 6.0
    assert not np.array_equal(auto.frames, shifted.frames)  # same seed, another schedule
    batch = pipe.generate_batch([PROMPT], seeds=[0], num_frames=5, shift=6.0)
    assert used[-1] == 6.0 and batch[0].metadata["shift"] == 6.0
    from kinema.cpu_features import cpu_has_native_bf16

    assert pipe.resolve_sampling(shift=6.0) == {"steps": 2, "guidance": 5.0, "sampler": "euler", "shift": 6.0,
                                                "precision": "bf16" if cpu_has_native_bf16() else "fp32"}
    assert pipe.resolve_sampling()["shift"] is None


def test_model_shift_is_the_default_and_a_bad_one_fails_at_load(saved, tmp_path, loaded):
    d = _copy(saved, tmp_path)
    index = json.loads((d / "model_index.json").read_text())
    index["defaults"]["shift"] = 4.0
    (d / "model_index.json").write_text(json.dumps(index))
    assert gen(Pipeline.from_pretrained(d)).metadata["shift"] == 4.0
    index["defaults"]["shift"] = -1
    (d / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(KinemaError, match="shift"):
        Pipeline.from_pretrained(d)


def test_guidance_interval_from_the_model_or_the_request(saved, tmp_path, loaded):
    d = _copy(saved, tmp_path)
    index = json.loads((d / "model_index.json").read_text())
    index["defaults"]["guidance_interval"] = [0.0, 0.6]
    (d / "model_index.json").write_text(json.dumps(index))
    pipe = Pipeline.from_pretrained(d)
    calls = []
    pipe.transformer.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    limited = gen(pipe, steps=4, shift=1.0, seed=3)
    assert limited.metadata["guidance_interval"] == [0.0, 0.6]
    assert calls == [1, 1, 2, 2]  # t = 1 and 0.75 unguided, 0.5 and 0.25 guided
    assert pipe.resolve_sampling()["guidance_interval"] == [0.0, 0.6]
    calls.clear()
    every = gen(pipe, steps=4, shift=1.0, seed=3, guidance_interval=(0.0, 1.0))
    assert calls == [2, 2, 2, 2] and every.metadata["guidance_interval"] == [0.0, 1.0]
    assert not np.array_equal(limited.frames, every.frames)
    batch = pipe.generate_batch([PROMPT], seeds=[3], num_frames=5, steps=4, shift=1.0)
    assert batch[0].metadata["guidance_interval"] == [0.0, 0.6]
    assert np.abs(batch[0].frames.astype(int) - limited.frames).max() <= 3
    with pytest.raises(KinemaError, match="guidance_interval"):
        gen(pipe, guidance_interval=(0.7, 0.2))
    assert "guidance_interval" not in gen(loaded).metadata  # the default: every step guided
    for bad in ([0.5], [0.0, 2.0], "0,1"):
        index["defaults"]["guidance_interval"] = bad
        (d / "model_index.json").write_text(json.dumps(index))
        with pytest.raises(KinemaError, match="guidance_interval"):
            Pipeline.from_pretrained(d)


def test_parse_size():
    assert parse_size("128x96") == (128, 96) and parse_size((64, 32)) == (64, 32)
    assert parse_size(" 64 x 48 ") == (64, 48)
