"""Video diffusion transformer: shapes, zero init, per-frame timesteps, text mask, rotary, config."""

import json

import pytest
import torch

from kinema.models.dit import DiTConfig, VideoDiT, apply_rotary, rope_axis_dims


def tiny_config(**kw) -> DiTConfig:
    d = dict(in_channels=4, hidden_size=32, depth=2, num_heads=2, text_dim=16)
    d.update(kw)
    return DiTConfig(**d)


def perturbed(model: VideoDiT, seed: int = 0) -> VideoDiT:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def inputs(B, t, h, w, L=6, C=4, text_dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, t, h, w, generator=g)
    ts = torch.rand(B, t, generator=g)
    states = torch.randn(B, L, text_dim, generator=g)
    mask = torch.zeros(B, L, dtype=torch.bool)
    mask[:, : L // 2 + 1] = True
    return x, ts, states, mask


@pytest.fixture(scope="module")
def model() -> VideoDiT:
    torch.manual_seed(0)
    return perturbed(VideoDiT(tiny_config())).eval()


@pytest.mark.parametrize("grid", [(1, 2, 2), (2, 4, 4), (5, 4, 6), (1, 8, 2), (2, 2, 10)])
def test_output_shape(model, grid):
    x, ts, s, m = inputs(2, *grid)
    with torch.no_grad():
        y = model(x, ts, s, m)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_without_qk_norm():
    m = perturbed(VideoDiT(tiny_config(qk_norm=False)))
    x, ts, s, mask = inputs(1, 2, 2, 4)
    with torch.no_grad():
        assert m(x, ts, s, mask).shape == x.shape


def test_zero_init_output_is_exactly_zero():
    torch.manual_seed(0)
    m = VideoDiT(tiny_config())
    x, ts, s, mask = inputs(2, 3, 4, 6)
    with torch.no_grad():
        y = m(x, ts, s, mask)
    assert torch.count_nonzero(y) == 0


def test_per_frame_timesteps(model):
    x, ts, s, m = inputs(1, 4, 4, 4)
    with torch.no_grad():
        y = model(x, ts, s, m)
        for j in range(4):
            ts2 = ts.clone()
            ts2[0, j] = 1.0 - ts2[0, j]
            y2 = model(x, ts2, s, m)
            assert not torch.allclose(y[:, :, j], y2[:, :, j], atol=1e-5), f"frame {j} ignored its timestep"


def test_text_changes_output_and_mask_is_respected(model):
    x, ts, s, m = inputs(1, 2, 4, 4)
    with torch.no_grad():
        y = model(x, ts, s, m)
        s_masked = s.clone()
        s_masked[~m] = torch.randn(int((~m).sum()), s.shape[-1])  # only padded positions change
        assert torch.allclose(model(x, ts, s_masked, m), y, atol=1e-5)
        s_real = s.clone()
        s_real[m] += 1.0
        assert not torch.allclose(model(x, ts, s_real, m), y, atol=1e-5)


def test_fully_masked_text_does_not_nan(model):
    x, ts, s, m = inputs(2, 2, 4, 4)
    m[0] = False  # one sample with no text at all, one with text
    with torch.no_grad():
        y = model(x, ts, s, m)
    assert torch.isfinite(y).all()
    x.requires_grad_(True)
    model(x, ts, s, torch.zeros_like(m)).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_rotary_tables_per_axis_and_position(model):
    t, h, w = 3, 4, 5
    cos, sin = model.rotary_tables(t, h, w)
    hd = model.config.head_dim
    assert cos.shape == sin.shape == (t * h * w, hd // 2)
    dt, dh, dw = rope_axis_dims(hd)
    assert dt + dh + dw == hd and dt % 2 == dh % 2 == dw % 2 == 0
    ang = torch.atan2(sin, cos).view(t, h, w, -1)
    at, ah, aw = ang.split([dt // 2, dh // 2, dw // 2], dim=-1)
    # each part varies along its own axis only
    assert torch.allclose(at, at[:, :1, :1].expand_as(at))
    assert torch.allclose(ah, ah[:1, :, :1].expand_as(ah))
    assert torch.allclose(aw, aw[:1, :1, :].expand_as(aw))
    assert not torch.allclose(at[0], at[1]) and not torch.allclose(ah[:, 0], ah[:, 1])
    assert not torch.allclose(aw[:, :, 0], aw[:, :, 1])
    # every token position gets a distinct table row
    rows = torch.cat([cos, sin], dim=1)
    assert torch.cdist(rows, rows).add(torch.eye(len(rows)) * 10).min() > 1e-3
    # cached per grid shape; another grid gives another table
    assert model.rotary_tables(t, h, w)[0] is cos
    assert model.rotary_tables(t, w, h)[0].shape == cos.shape
    assert not torch.equal(model.rotary_tables(t, w, h)[0], cos)


def test_rotary_rotates_pairs_and_is_relative(model):
    cos, sin = model.rotary_tables(4, 2, 2)
    cis = model.rope(4, 2, 2)
    x = torch.randn(1, 1, 16, model.config.head_dim)
    y = apply_rotary(x, cis)
    a, b = x[..., 0::2], x[..., 1::2]
    assert torch.allclose(y[..., 0::2], a * cos - b * sin, atol=1e-5)
    assert torch.allclose(y[..., 1::2], a * sin + b * cos, atol=1e-5)
    # q.k after rotation depends on the offset between positions, not on where they are
    q = apply_rotary(x[:, :, :1].expand(1, 1, 16, -1), cis)[0, 0]
    k = apply_rotary(x[:, :, 1:2].expand(1, 1, 16, -1), cis)[0, 0]
    grid = torch.arange(16).view(4, 2, 2)
    i0, j0 = grid[0, 0, 1], grid[1, 1, 0]  # offset (1, 1, -1)
    i1, j1 = grid[2, 0, 1], grid[3, 1, 0]  # same offset, elsewhere
    assert torch.allclose(q[i0] @ k[j0], q[i1] @ k[j1], atol=1e-4)
    assert not torch.allclose(q[i0] @ k[j0], q[i0] @ k[grid[3, 1, 0]], atol=1e-4)


def test_config_round_trip():
    cfg = tiny_config(patch_size=(1, 2, 2), qk_norm=False)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["patch_size"] == [1, 2, 2]
    assert DiTConfig.from_dict(d) == cfg
    with pytest.raises(ValueError, match="num_layers"):
        DiTConfig.from_dict({**d, "num_layers": 3})
    with pytest.raises(ValueError, match="num_heads"):
        DiTConfig(hidden_size=30, num_heads=4)


def test_bad_shapes_raise(model):
    x, ts, s, m = inputs(1, 2, 4, 4)
    with pytest.raises(ValueError, match="timesteps"):
        model(x, ts[:, :1], s, m)
    with pytest.raises(ValueError, match="divisible"):
        model(torch.randn(1, 4, 2, 3, 4), ts, s, m)
    with pytest.raises(ValueError, match="text_states"):
        model(x, ts, torch.randn(1, 6, 8), m)


def test_gradient_step_runs():
    torch.manual_seed(0)
    m = VideoDiT(tiny_config(qk_norm=True)).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    x, ts, s, mask = inputs(2, 2, 4, 4)
    target = torch.randn_like(x)
    losses = []
    for _ in range(3):
        loss = torch.nn.functional.mse_loss(m(x, ts, s, mask), target)
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert torch.count_nonzero(m(x, ts, s, mask)) > 0


def test_params_and_flops():
    m = VideoDiT(tiny_config())
    assert m.num_params() == sum(p.numel() for p in m.parameters()) > 0
    f1 = m.flops_per_forward(1, 4, 4, 6)
    f2 = m.flops_per_forward(2, 4, 4, 6)
    assert 0 < f1 < f2 and isinstance(f1, int)
    assert m.flops_per_forward(2, 4, 4, 6, batch=3) == 3 * f2


def test_frame_position_starts_as_a_no_op_on_weights_trained_without_it():
    from kinema.models.dit import zero_start_keys

    torch.manual_seed(0)
    plain = perturbed(VideoDiT(tiny_config())).eval()
    placed = VideoDiT(tiny_config(frame_position=True)).eval()
    missing, unexpected = placed.load_state_dict(plain.state_dict(), strict=False)
    assert set(missing) == zero_start_keys(placed) == {"frame_pos.proj.weight", "frame_pos.proj.bias"}
    assert not unexpected and zero_start_keys(plain) == set()
    args = inputs(2, 3, 4, 6)
    with torch.no_grad():
        assert torch.equal(plain(*args), placed(*args))
        placed.frame_pos.proj.weight.normal_(0, 0.5)
        moved = placed(*args)
    assert not torch.allclose(plain(*args), moved)  # once trained it does change the output
    # it tells left from right and top from bottom: a mirrored frame gets different features
    feats = placed.frame_pos.features(4, 6)
    grid = feats.view(4, 6, -1)
    assert not torch.allclose(grid, grid.flip(1)) and not torch.allclose(grid, grid.flip(0))
    assert len({tuple(r.tolist()) for r in feats}) == 24  # every token's place is its own


def test_frame_position_reads_places_as_fractions_of_the_frame():
    model = VideoDiT(tiny_config(frame_position=True))
    small, large = model.frame_pos.features(2, 4), model.frame_pos.features(6, 12)
    # token (row 0, column 1) of a 2x4 grid and token (row 1, column 4) of a 6x12 grid share their
    # centre: x = 1.5/4 = 4.5/12, y = 0.5/2 = 1.5/6
    assert torch.allclose(small.view(2, 4, -1)[0, 1], large.view(6, 12, -1)[1, 4], atol=1e-6)
    assert model.flops_per_forward(3, 8, 8, 6) > VideoDiT(tiny_config()).flops_per_forward(3, 8, 8, 6)


def test_cross_position_starts_as_a_no_op_and_puts_the_place_into_every_blocks_queries():
    from kinema.models.dit import zero_start_keys

    torch.manual_seed(0)
    plain = perturbed(VideoDiT(tiny_config())).eval()
    placed = VideoDiT(tiny_config(cross_position=True)).eval()
    missing, unexpected = placed.load_state_dict(plain.state_dict(), strict=False)
    want = {f"blocks.{i}.cross_pos.{p}" for i in range(len(placed.blocks)) for p in ("weight", "bias")}
    assert set(missing) == zero_start_keys(placed) == want and not unexpected
    args = inputs(2, 3, 4, 6)
    with torch.no_grad():
        assert torch.equal(plain(*args), placed(*args))
        placed.blocks[0].cross_pos.weight.normal_(0, 0.5)
        moved = placed(*args)
    assert not torch.allclose(plain(*args), moved)
    # the place reaches the queries: with the video tokens all alike, the attention differs by place
    x, t, states, mask = inputs(1, 1, 4, 6)
    maps: list = []
    plain_maps: list = []
    with torch.no_grad():
        placed(torch.zeros_like(x), t, states, mask, cross_attention=maps)
        plain(torch.zeros_like(x), t, states, mask, cross_attention=plain_maps)
    first, plain_first = maps[0][0].mean(0), plain_maps[0][0].mean(0)  # [tokens, text]
    assert (plain_first - plain_first[:1]).abs().max() < 1e-6  # rotary positions alone: all alike
    assert (first - first[:1]).abs().max() > 1e-3
    assert placed.flops_per_forward(3, 8, 8, 6) > plain.flops_per_forward(3, 8, 8, 6)


def test_text_refiner_starts_as_a_no_op_and_lets_each_text_token_see_the_others():
    from kinema.models.dit import zero_start_keys

    torch.manual_seed(0)
    plain = perturbed(VideoDiT(tiny_config())).eval()
    refined = VideoDiT(tiny_config(text_refiner=2)).eval()
    missing, unexpected = refined.load_state_dict(plain.state_dict(), strict=False)
    assert set(missing) == zero_start_keys(refined) and not unexpected
    assert {k.split(".")[0] for k in missing} == {"text_refiner"} and len(missing) == 2 * 12
    args = inputs(2, 3, 4, 6)
    with torch.no_grad():
        assert torch.equal(plain(*args), refined(*args))
        for p in refined.text_refiner.parameters():
            p.add_(0.1 * torch.randn_like(p))
        x, t, states, mask = args
        ctx = refined.refine_text(refined.text_proj(states), mask)
        last = int(mask[0].nonzero().max())
        later = states.clone()
        later[0, last] += 1.0  # change only the first sample's last real text token
        ctx_later = refined.refine_text(refined.text_proj(later), mask)
        # the projection alone is per token; with the refiner the first token sees the change
        assert torch.equal(refined.text_proj(later)[:, 0], refined.text_proj(states)[:, 0])
        assert not torch.allclose(ctx_later[0, 0], ctx[0, 0])
        empty = torch.zeros_like(mask)
        assert torch.isfinite(refined(x, t, states, empty)).all()  # an empty caption: no NaN
    assert refined.flops_per_forward(3, 8, 8, 6) > plain.flops_per_forward(3, 8, 8, 6)
    from kinema.models.vae import ConfigError

    with pytest.raises(ConfigError, match="text_refiner"):
        tiny_config(text_refiner=-1)
