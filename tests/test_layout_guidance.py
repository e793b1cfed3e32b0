"""benchmarks/layout_guidance.py: guidance that reads the layout alone, or leans harder on it."""

import torch

import kinema.pipeline as pipeline_module
from conftest import load_script

probe = load_script("benchmarks/layout_guidance.py")


def _recorder(calls):
    def sample(model, noise, states, mask, *, uncond_states=None, uncond_mask=None, layout=None, **kw):
        calls.append((states, mask, uncond_states, layout))
        return noise
    return sample


def test_layout_only_replaces_the_words_only_when_a_layout_is_given():
    calls = []
    wrapped = probe.layout_only(_recorder(calls))
    states, mask = torch.randn(3, 5, 4), torch.ones(3, 5, dtype=torch.bool)
    ustates, umask = torch.randn(1, 5, 4), torch.zeros(1, 5, dtype=torch.bool)
    layout = torch.ones(3, 2, 1, 2, 2)
    wrapped(None, torch.zeros(3, 1), states, mask, uncond_states=ustates, uncond_mask=umask, layout=layout)
    got_states, got_mask, _, got_layout = calls[-1]
    assert got_states.shape == states.shape and torch.equal(got_states, ustates.expand(3, 5, 4))
    assert torch.equal(got_mask, umask.expand(3, 5)) and got_layout is layout
    wrapped(None, torch.zeros(3, 1), states, mask, uncond_states=ustates, uncond_mask=umask)
    assert calls[-1][0] is states and calls[-1][1] is mask


def _toy_model(x, tt, states, mask, layout=None):
    """A velocity that reads words (states) and layout differently, so every branch differs."""
    words = states.mean(dim=(1, 2)).view(-1, 1, 1, 1, 1)
    drawn = 0.0 if layout is None else 3.0 * layout.mean(dim=(1, 2, 3, 4)).view(-1, 1, 1, 1, 1)
    return x * 0.5 + words + drawn


def test_layout_boost_adds_h_times_what_the_layout_adds():
    g, h = 4.0, 2.0
    x, tt = torch.randn(2, 1, 1, 2, 2), torch.zeros(2, 1)
    cond, uncond = torch.randn(2, 3, 4), torch.zeros(2, 3, 4)
    layout = torch.rand(2, 5, 1, 2, 2) + 0.1
    boosted = probe.LayoutBoost(_toy_model, g, h)
    mask = torch.ones(4, 3, dtype=torch.bool)
    v = boosted(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([cond, uncond]), mask,
                layout=torch.cat([layout, torch.zeros_like(layout)]))
    v_c, v_u = v.chunk(2)
    guided = v_u + g * (v_c - v_u)
    plain_c, plain_u = _toy_model(x, tt, cond, None, layout), _toy_model(x, tt, uncond, None, torch.zeros_like(layout))
    words_only = _toy_model(x, tt, cond, None, torch.zeros_like(layout))
    expected = plain_u + g * (plain_c - plain_u) + h * (plain_c - words_only)
    assert torch.allclose(guided, expected, atol=1e-5)
    assert not torch.allclose(guided, plain_u + g * (plain_c - plain_u))
    unguided = boosted(x, tt, cond, mask[:2], layout=layout)  # not a guided batch: passes through
    assert torch.equal(unguided, _toy_model(x, tt, cond, None, layout))


def test_the_shipped_pipeline_samples_through_the_patched_function(monkeypatch):
    pipe = pipeline_module.Pipeline.from_pretrained()
    calls = []
    shipped = pipeline_module.sample

    def recording(*args, **kw):
        calls.append((args[2], kw["uncond_states"], kw["layout"]))
        return shipped(*args, **kw)

    monkeypatch.setattr(pipeline_module, "sample", probe.layout_only(recording))
    pipe.generate_batch(["a small red star left of a large blue square"], seeds=[0], steps=1, num_frames=1)
    states, ustates, layout = calls[0]
    assert layout is not None and torch.equal(states, ustates.expand_as(states))
