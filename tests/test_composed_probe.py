import torch
from conftest import load_script

from kinema.eval.prompts import make_item

probe = load_script("benchmarks/composed_probe.py")


def test_composed_returns_the_weighted_sum_of_its_terms():
    # a "model" whose velocity is the text state's first feature, broadcast over the latents
    def model(x, tt, states, mask):
        return states[:, 0, 0].view(-1, 1, 1, 1, 1).expand_as(x) + 0 * x

    states = torch.tensor([1.0, 10.0, 100.0, 1000.0]).view(4, 1, 1).expand(4, 2, 3).repeat_interleave(2, 0)
    mask = torch.ones(8, 2, dtype=torch.bool)
    composed = probe.Composed(model, states, mask, [1.0, 0.5, 0.5, -1.0])
    x = torch.zeros(2, 8, 3, 4, 4)
    v = composed(x, torch.zeros(2, 3), None, None)
    assert v.shape == x.shape
    assert torch.allclose(v, torch.full_like(x, 1.0 + 5.0 + 50.0 - 1000.0))


def test_sub_prompts_describe_each_object_alone_on_the_same_background():
    item = make_item("relation", "seen", 0)
    subs = probe.sub_prompts(item.spec)
    assert len(subs) == 2
    for obj, text in zip(item.spec.objects, subs):
        assert obj.color in text and obj.shape in text and item.spec.background in text
        assert " of " not in text and "above" not in text and "below" not in text
        other = next(o for o in item.spec.objects if o is not obj)
        assert other.color not in text
    # the spec itself is left whole
    assert len(item.spec.objects) == 2
