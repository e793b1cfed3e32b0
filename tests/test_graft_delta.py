"""scripts/graft_delta.py adds a fine-tune's change to another model's weights."""

import pytest
import torch
from conftest import load_script


def test_graft_adds_the_change_only_where_the_names_match():
    mod = load_script("scripts/graft_delta.py")
    base = {"blocks.0.cross.q.weight": torch.ones(2), "blocks.0.mlp.fc1.weight": torch.zeros(2)}
    ref = {k: torch.full((2,), 0.5) for k in base}
    donor = {k: torch.full((2,), 2.0) for k in base}
    out, changed = mod.graft(base, ref, donor, match=r"\.cross\.", alpha=0.5)
    assert changed == 1
    assert torch.equal(out["blocks.0.cross.q.weight"], torch.full((2,), 1.75, dtype=torch.float16))
    assert torch.equal(out["blocks.0.mlp.fc1.weight"], torch.zeros(2, dtype=torch.float16))
    everything, changed = mod.graft(ref, ref, donor)
    assert changed == 2 and all(torch.equal(v, donor[k].half()) for k, v in everything.items())


def test_models_with_different_tensors_are_refused():
    mod = load_script("scripts/graft_delta.py")
    with pytest.raises(SystemExit, match="differ"):
        mod.graft({"a": torch.ones(1)}, {"a": torch.ones(1)}, {"b": torch.ones(1)})
