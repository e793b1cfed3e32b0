"""The VideoDiT inference fast path (oneDNN or torch matmuls, cached text tensors) equals the reference path.

The reference path is the plain PyTorch code used for training (autograd on) or with
kinema.models.dit.FAST_INFERENCE off; the fast path runs under no_grad on CPU in float32.
"""

import pytest
import torch

import kinema.models.dit as dit
from kinema.cpu_features import cpu_has_native_bf16
from kinema.diffusion.sampling import sample
from kinema.models.dit import DiTConfig, VideoDiT

import test_dit as dit_test_helpers  # the transformer tests' random weights and inputs

# the fast path runs on torch's matmuls anywhere; these need oneDNN's (x86-64 builds)
needs_onednn = pytest.mark.skipif(not dit._onednn_available(), reason="this torch build has no oneDNN linear op")
MATMUL_LIBRARIES = [pytest.param("onednn", marks=needs_onednn), "torch"]


def perturbed(model: VideoDiT, seed: int = 0) -> VideoDiT:
    return dit_test_helpers.perturbed(model, seed).eval()


def tiny(**kw) -> VideoDiT:
    d = dict(in_channels=4, hidden_size=48, depth=2, num_heads=2, text_dim=16)
    d.update(kw)
    torch.manual_seed(0)
    return perturbed(VideoDiT(DiTConfig(**d)))


def inputs(B, t, h, w, **kw):
    x, ts, states, mask = dit_test_helpers.inputs(B, t, h, w, **kw)
    if B > 1:
        mask[-1] = False  # a sample without text: zero cross-attention, not NaN
    return x, ts, states, mask


def run(model, *args, fast: bool):
    old = dit.FAST_INFERENCE
    dit.FAST_INFERENCE = fast
    try:
        with torch.no_grad():
            return model(*args)
    finally:
        dit.FAST_INFERENCE = old


@pytest.mark.parametrize("kw", [{}, {"qk_norm": False}, {"num_heads": 4, "hidden_size": 48},
                                 {"patch_size": (2, 2, 2), "in_channels": 4}, {"frame_position": True},
                                 {"cross_position": True}, {"text_refiner": 2}])
@pytest.mark.parametrize("B,grid", [(1, (1, 2, 2)), (2, (3, 4, 6)), (3, (2, 8, 2))])
@pytest.mark.parametrize("matmuls", MATMUL_LIBRARIES)
def test_fast_path_equals_reference(kw, B, grid, matmuls, monkeypatch):
    monkeypatch.setattr(dit, "MATMULS", matmuls)
    assert dit._onednn_matmuls() == (matmuls == "onednn")
    model = tiny(**kw)
    t = grid[0] * (2 if kw.get("patch_size", (1,))[0] == 2 else 1)
    x, ts, s, m = inputs(B, t, grid[1], grid[2])
    ref = run(model, x, ts, s, m, fast=False)
    model._text_cache = None
    out = run(model, x, ts, s, m, fast=True)
    assert torch.isfinite(out).all()
    assert (out - ref).abs().max().item() < 1e-5
    if B > 1:  # the text-less sample gets the reference's answer too (zero cross-attention)
        assert (out[-1] - ref[-1]).abs().max().item() < 1e-5


def test_fast_path_is_taken_only_without_autograd(monkeypatch):
    model = tiny()
    x, ts, s, m = inputs(2, 2, 4, 4)
    calls = []
    real = VideoDiT._forward_fast
    monkeypatch.setattr(VideoDiT, "_forward_fast", lambda self, *a: calls.append(1) or real(self, *a))
    with torch.no_grad():
        model(x, ts, s, m)
    assert calls == [1]
    y = model(x, ts, s, m)  # autograd on: the reference path, with gradients
    assert calls == [1] and y.requires_grad


def test_text_cache_reused_and_equal_to_uncached():
    model = tiny()
    x, ts, s, m = inputs(2, 3, 4, 4)
    model._text_cache = None
    first = run(model, x, ts, s, m, fast=True)
    cached = model._text_cache
    assert cached is not None and cached[0] is s and cached[1] is m
    second = run(model, x, ts, s, m, fast=True)  # same text tensors: cache hit
    assert model._text_cache is cached
    assert torch.equal(first, second)
    # a different timestep (the next sampling step) with the cache equals a fresh computation
    ts2 = ts * 0.5
    hit = run(model, x, ts2, s, m, fast=True)
    assert model._text_cache is cached
    model._text_cache = None
    miss = run(model, x, ts2, s, m, fast=True)
    assert torch.equal(hit, miss)


def test_text_cache_invalidated_by_in_place_changes():
    model = tiny()
    x, ts, s, m = inputs(2, 2, 4, 4)
    run(model, x, ts, s, m, fast=True)
    with torch.no_grad():
        s.mul_(-1.5)  # the caller edits its text tensor in place
    out = run(model, x, ts, s, m, fast=True)
    assert (out - run(model, x, ts, s, m, fast=False)).abs().max() < 1e-5
    m[0, -1] = True  # ... or its mask
    out = run(model, x, ts, s, m, fast=True)
    assert (out - run(model, x, ts, s, m, fast=False)).abs().max() < 1e-5
    with torch.no_grad():  # weights change (a training step, EMA, load_state_dict)
        model.blocks[0].cross.kv.weight.mul_(0.5)
        model.text_proj[0].bias.add_(0.3)
    out = run(model, x, ts, s, m, fast=True)
    assert (out - run(model, x, ts, s, m, fast=False)).abs().max() < 1e-5
    other = tiny()
    perturbed(other, seed=3)
    model.load_state_dict(other.state_dict())
    out = run(model, x, ts, s, m, fast=True)
    assert (out - run(other, x, ts, s, m, fast=False)).abs().max() < 1e-5


def test_inference_mode_tensors_are_not_cached():
    model = tiny()
    x, ts, s, m = inputs(2, 2, 4, 4)
    ref = run(model, x, ts, s, m, fast=False)
    with torch.inference_mode():
        s2, m2 = s.clone(), m.clone()
        out = model(x, ts, s2, m2)
        s2.mul_(2.0)  # inference tensors have no version counter: nothing may be reused
        out2 = model(x, ts, s2, m2)
    assert (out - ref).abs().max() < 1e-5
    s3 = s * 2.0
    assert (out2 - run(model, x, ts, s3, m, fast=False)).abs().max() < 1e-5


def test_sampling_with_cache_equals_reference():
    model = tiny(in_channels=4)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(1, 4, 3, 4, 4, generator=g)
    s = torch.randn(1, 6, 16, generator=g)
    m = torch.ones(1, 6, dtype=torch.bool)
    us, um = torch.zeros(1, 1, 16), torch.ones(1, 1, dtype=torch.bool)
    out = {}
    for fast in (False, True):
        dit.FAST_INFERENCE = fast
        try:
            out[fast] = sample(model, noise, s, m, uncond_states=us, uncond_mask=um, guidance=4.0, steps=6)
        finally:
            dit.FAST_INFERENCE = True
    assert (out[True] - out[False]).abs().max() < 1e-4


@needs_onednn
def test_probe_leaves_the_global_random_stream_alone():
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    dit._ONEDNN_OK = None
    assert dit._onednn_available()
    assert torch.equal(torch.rand(4), expected)


def test_shipped_model_fast_equals_reference():
    from kinema.pipeline import DEFAULT_MODEL_DIR, _load_component

    if not (DEFAULT_MODEL_DIR / "transformer" / "config.json").is_file():
        pytest.skip("the shipped model is not in this build")
    model = _load_component(DEFAULT_MODEL_DIR, "transformer", DiTConfig, VideoDiT)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 7, 16, 16, generator=g)
    ts = torch.rand(2, 7, generator=g)
    s = torch.randn(2, 32, 384, generator=g)
    m = torch.zeros(2, 32, dtype=torch.bool)
    m[0, :12] = True
    m[1, :1] = True
    ref = run(model, x, ts, s, m, fast=False)
    out = run(model, x, ts, s, m, fast=True)
    assert (out - ref).abs().max().item() < 1e-4


def test_matmul_library_follows_the_cpu(monkeypatch):
    """"auto": oneDNN where the CPU has AVX-512, torch's matmuls elsewhere; a bad setting is named."""
    monkeypatch.setattr(dit, "MATMULS", "auto")
    for avx512 in (True, False):
        monkeypatch.setattr(dit, "cpu_has_avx512", lambda avx512=avx512: avx512)
        assert dit._onednn_matmuls() == (avx512 and dit._onednn_available())
        assert dit._sdpa_min_tokens(torch.float32) == (dit.SDPA_MIN_TOKENS if dit._onednn_matmuls()
                                                       else dit.SDPA_MIN_TOKENS_TORCH_MATMULS)
        assert dit._sdpa_min_tokens(torch.bfloat16) == dit.SDPA_MIN_TOKENS_BF16
    monkeypatch.setattr(dit, "MATMULS", "blas")
    with pytest.raises(ValueError, match="KINEMA_DIT_MATMULS"):
        dit._onednn_matmuls()


@pytest.mark.parametrize("kw", [{}, {"qk_norm": False}])
@pytest.mark.parametrize("matmuls", MATMUL_LIBRARIES)
def test_long_sequence_attention_path_equals_reference(kw, matmuls, monkeypatch):
    """From SDPA_MIN_TOKENS tokens on, self-attention goes through scaled_dot_product_attention;
    lowering the threshold runs that branch on a small grid, which must give the same answer."""
    monkeypatch.setattr(dit, "MATMULS", matmuls)
    monkeypatch.setattr(dit, "SDPA_MIN_TOKENS", 10**9)
    monkeypatch.setattr(dit, "SDPA_MIN_TOKENS_TORCH_MATMULS", 10**9)
    model = tiny(**kw)
    x, ts, s, m = inputs(2, 3, 4, 6)
    ref = run(model, x, ts, s, m, fast=False)
    model._text_cache = None
    per_head = run(model, x, ts, s, m, fast=True)
    monkeypatch.setattr(dit, "SDPA_MIN_TOKENS", 1)
    monkeypatch.setattr(dit, "SDPA_MIN_TOKENS_TORCH_MATMULS", 1)
    model._text_cache = None
    fused = run(model, x, ts, s, m, fast=True)
    assert (fused - ref).abs().max().item() < 1e-5
    assert (fused - per_head).abs().max().item() < 1e-5


# ----- bfloat16 matmuls under CPU autocast (denoise_precision "bf16", or "auto" on an AMX CPU) -----


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).pow(2).mean() / b.pow(2).mean()).sqrt().item()


def run_bf16(model, *args, fast: bool):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return run(model, *args, fast=fast)


# oneDNN builds no bf16 matmul on a CPU without native bf16 (AVX2 only), so there the fast path
# steps aside under bf16 autocast (test below) and these tests of its bf16 arithmetic cannot run
needs_native_bf16 = pytest.mark.skipif(not cpu_has_native_bf16(),
                                       reason="the bf16 fast path runs only on a CPU with AVX512-BF16 or AMX")


def test_bf16_autocast_takes_the_reference_path_without_native_bf16(monkeypatch):
    monkeypatch.setattr(dit, "cpu_has_native_bf16", lambda: False)
    model = tiny()
    x, ts, s, m = inputs(2, 3, 4, 6)
    calls = []
    real = VideoDiT._forward_fast_in
    monkeypatch.setattr(VideoDiT, "_forward_fast_in", lambda self, *a: calls.append(a[4]) or real(self, *a))
    out = run_bf16(model, x, ts, s, m, fast=True)
    assert calls == []  # no oneDNN bf16 matmul asked for: the reference path, under autocast
    assert torch.equal(out, run_bf16(model, x, ts, s, m, fast=False))
    assert 0 < rel_err(out, run(model, x, ts, s, m, fast=False)) < 0.02
    run(model, x, ts, s, m, fast=True)  # float32 still takes the fast path
    assert calls == [torch.float32]


@needs_native_bf16
@pytest.mark.parametrize("kw", [{}, {"qk_norm": False}, {"frame_position": True, "cross_position": True},
                                {"text_refiner": 1}])
def test_bf16_fast_path_is_close_to_float32(kw, monkeypatch):
    model = tiny(**kw)
    x, ts, s, m = inputs(2, 3, 4, 6)
    ref = run(model, x, ts, s, m, fast=False)
    calls = []
    real = VideoDiT._forward_fast_in
    monkeypatch.setattr(VideoDiT, "_forward_fast_in",
                        lambda self, *a: calls.append(a[4]) or real(self, *a))  # a[4]: the matmul dtype
    model._text_cache = None
    out = run_bf16(model, x, ts, s, m, fast=True)
    assert calls == [torch.bfloat16]  # the fast path, with bf16 matmuls
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    err = rel_err(out, ref)
    assert 0 < err < 0.02  # bf16 rounding (8 bits of mantissa), not another answer
    assert rel_err(out, run_bf16(model, x, ts, s, m, fast=False)) < 0.03  # as close as autocast's own
    assert (out[-1] - ref[-1]).abs().max().item() < 0.05  # the text-less sample too
    # float32 again: the text tensors held in bf16 are not reused for it
    assert (run(model, x, ts, s, m, fast=True) - ref).abs().max().item() < 1e-5


def test_bf16_weight_copies_follow_the_parameters():
    model = tiny()
    x, ts, s, m = inputs(1, 2, 4, 4)
    before = run_bf16(model, x, ts, s, m, fast=True)
    with torch.no_grad():
        model.blocks[0].mlp.fc2.weight.mul_(3.0)  # in place: the bf16 copy must be remade
    after = run_bf16(model, x, ts, s, m, fast=True)
    expected = run(model, x, ts, s, m, fast=False)
    assert rel_err(after, before) > 0.01
    assert rel_err(after, expected) < 0.02


@pytest.mark.parametrize("low", [False, True])
def test_stacked_modulation_follows_the_parameters(low):
    """The fast path runs every block's adaLN layer as one matmul over weights stacked once; an
    in-place change to one block's layer, or to the final layer's, must reach the output."""
    model = tiny()
    x, ts, s, m = inputs(2, 2, 4, 4)
    forward = run_bf16 if low else run
    tol = 0.02 if low else 1e-5
    forward(model, x, ts, s, m, fast=True)  # the stacked weights are made here
    for layer in (model.blocks[1].adaLN_modulation[1], model.final_layer.adaLN_modulation[1]):
        before = forward(model, x, ts, s, m, fast=True)
        with torch.no_grad():
            layer.bias.add_(0.5)
        after = forward(model, x, ts, s, m, fast=True)
        assert rel_err(after, before) > 0.01
        assert rel_err(after, run(model, x, ts, s, m, fast=False)) < tol


@needs_onednn
def test_onednn_probe_under_autocast():
    """A first forward under bf16 autocast must not make the probe (which compares with
    F.linear, bf16 under autocast) turn the fast path off for good."""
    dit._ONEDNN_OK = None
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert dit._onednn_available()
    assert dit._ONEDNN_OK is True


@needs_native_bf16
def test_bf16_per_head_attention_agrees_with_fused(monkeypatch):
    """bf16 self-attention goes through the fused kernel by default (SDPA_MIN_TOKENS_BF16 = 0);
    the per-head matmuls, above the threshold, give the same answer to bf16 rounding."""
    model = tiny()
    x, ts, s, m = inputs(2, 3, 4, 6)
    ref = run(model, x, ts, s, m, fast=False)
    fused = run_bf16(model, x, ts, s, m, fast=True)
    monkeypatch.setattr(dit, "SDPA_MIN_TOKENS_BF16", 10**9)
    per_head = run_bf16(model, x, ts, s, m, fast=True)
    assert rel_err(per_head, ref) < 0.02 and rel_err(fused, ref) < 0.02
    assert 0 < rel_err(per_head, fused) < 0.02


def test_sigmoid_form_of_tanh_gelu_equals_torchs():
    y = torch.cat([torch.linspace(-12, 12, 20001), torch.tensor([-1e20, -1e6, -30.0, 0.0, 30.0, 1e6, 1e20])])
    ref = torch.nn.functional.gelu(y, approximate="tanh")
    out = dit._gelu_tanh_(y.clone())
    assert torch.isfinite(out).all()
    assert torch.allclose(out, ref, rtol=1e-6, atol=1e-6)
