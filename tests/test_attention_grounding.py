"""benchmarks/attention_grounding.py: attention grids, centroids, and the figures it prints."""

import numpy as np
import pytest
import torch
from conftest import load_script


def _module():
    return load_script("benchmarks/attention_grounding.py")


def test_attention_grid_and_centroid_read_one_tokens_attention_over_the_frame():
    mod = _module()
    maps = [torch.zeros(1, 2, 4, 3) for _ in range(2)]  # 2 blocks, 2 heads, a 2x2 grid, 3 text tokens
    for m in maps:
        m[0, :, 0, 1] = 1.0  # token 1 looks at the top-left cell
        m[0, :, 3, 2] = 1.0  # token 2 at the bottom-right one
    a = mod.attention_grid(maps, 1, (2, 2))
    assert a.sum() == pytest.approx(1.0) and a[0, 0] == pytest.approx(1.0)
    assert mod.centroid(a) == pytest.approx((0.25, 0.25))
    assert mod.centroid(mod.attention_grid(maps, 2, (2, 2))) == pytest.approx((0.75, 0.75))


def test_attention_spread_evenly_scores_the_even_spread_and_no_side():
    """A transformer whose cross-attention queries are zero spreads every word evenly over the
    frame: 'on object' is then exactly the even-spread share and no side is preferred."""
    from kinema.models.dit import DiTConfig
    from kinema.models.vae import VAEConfig
    from kinema.pipeline import Pipeline

    mod = _module()
    pipe = Pipeline.from_configs(VAEConfig(base_channels=8), DiTConfig(hidden_size=32, depth=2, num_heads=2))
    with torch.no_grad():
        for block in pipe.transformer.blocks:
            block.cross.q.weight.zero_()
            block.cross.q.bias.zero_()
    items = load_script("benchmarks/relation_stills.py").relation_items(0, 2, 64, 64)
    results = mod.measure(pipe, items, [0.9, 0.3], seeds=1)
    assert sorted(results) == [("heldout", 0.3), ("heldout", 0.9), ("seen", 0.3), ("seen", 0.9)]
    for row in results.values():
        assert len(row["on"]) == 2 and len(row["side"]) == 2
        np.testing.assert_allclose(row["on"], row["chance"], rtol=1e-5)
        assert 0 < min(row["chance"]) < 0.5 and row["side"] == [0.0, 0.0]
    lines = mod.report_lines(results)
    assert lines[0].startswith("  seen t=0.9: on object ") and "side as asked 0 (0.0%" in lines[0]
    assert [line.split(":")[0] for line in lines] == ["  seen t=0.9", "  seen t=0.3", "  heldout t=0.9",
                                                       "  heldout t=0.3"]
