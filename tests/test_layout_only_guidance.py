"""benchmarks/layout_only_guidance.py: the guided branch reads the layout without the prompt's words."""

import torch

import kinema.pipeline as pipeline_module
from conftest import load_script

probe = load_script("benchmarks/layout_only_guidance.py")


def _recorder(calls):
    def sample(model, noise, states, mask, *, uncond_states=None, uncond_mask=None, layout=None, **kw):
        calls.append((states, mask, uncond_states, layout))
        return noise
    return sample


def test_words_are_replaced_only_when_a_layout_is_given():
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
