"""Rectified flow (kinema.diffusion.flow) and the sampler core (kinema.diffusion.sampling)."""

import math

import pytest
import torch

from kinema.diffusion.flow import (add_noise, flow_matching_loss, flow_matching_loss_terms, num_tokens_for,
                                   random_condition_mask, sample_timesteps, shift_for_tokens, time_shift,
                                   unshift_time)
from kinema.diffusion.sampling import edit_schedule, sample, timestep_schedule


# ----- time shift, timesteps ---------------------------------------------------------------------


def test_time_shift_endpoints_identity_and_direction():
    t = torch.linspace(0, 1, 101)
    assert torch.equal(time_shift(t, 1.0), t)
    for s in (0.5, 2.0, 3.0):
        y = time_shift(t, s)
        assert y[0] == 0 and y[-1] == 1
        assert bool((y[1:] >= y[:-1]).all())  # monotone
    inner = t[1:-1]
    assert bool((time_shift(inner, 3.0) > inner).all())  # shift > 1 moves t up (more noise)
    assert bool((time_shift(inner, 0.5) < inner).all())
    assert time_shift(0.5, 3.0) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        time_shift(t, 0.0)


def test_shift_grows_with_tokens_and_is_clamped():
    assert shift_for_tokens(256) == pytest.approx(1.0)
    assert shift_for_tokens(4096) == pytest.approx(3.0)
    assert shift_for_tokens(10) == pytest.approx(1.0)
    assert shift_for_tokens(100000) == pytest.approx(3.0)
    values = [shift_for_tokens(n) for n in (256, 512, 1024, 2048, 4096)]
    assert values == sorted(values) and values[0] < values[-1]
    assert num_tokens_for((1, 8, 7, 16, 16)) == 7 * 8 * 8
    assert num_tokens_for((7, 16, 16)) == 7 * 8 * 8


def test_sample_timesteps_logit_normal_and_shifted():
    g = torch.Generator().manual_seed(0)
    t = sample_timesteps(20000, generator=g)
    assert t.shape == (20000,)
    assert bool(((t > 0) & (t < 1)).all())
    assert float(t.median()) == pytest.approx(0.5, abs=0.02)  # logit-normal(0, 1): symmetric about 0.5
    assert float(((t > 0.3) & (t < 0.7)).float().mean()) > 0.55  # concentrated in the middle
    g = torch.Generator().manual_seed(0)
    ts = sample_timesteps(20000, generator=g, num_tokens=4096)  # same draws, shift 3
    assert bool((ts >= t).all()) and float(ts.mean()) > float(t.mean()) + 0.1
    a = sample_timesteps(8, generator=torch.Generator().manual_seed(5))
    b = sample_timesteps(8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_a_fixed_training_shift_overrides_the_token_count_rule():
    base = sample_timesteps(20000, generator=torch.Generator().manual_seed(0))
    fixed = sample_timesteps(20000, generator=torch.Generator().manual_seed(0), num_tokens=4096, shift=4.0)
    assert torch.allclose(fixed, time_shift(base, 4.0))
    assert float(fixed.median()) == pytest.approx(0.8, abs=0.02)  # time_shift(0.5, 4) = 0.8
    # a fixed shift of 1 is no shift, whatever the token count
    assert torch.equal(sample_timesteps(50, generator=torch.Generator().manual_seed(1), num_tokens=4096, shift=1.0),
                       sample_timesteps(50, generator=torch.Generator().manual_seed(1)))


def test_the_loss_draws_its_timesteps_with_the_fixed_shift():
    seen = []

    def model(x_t, tt, states, mask):
        seen.append(tt[:, 0].clone())
        return torch.zeros_like(x_t)

    x0 = torch.zeros(64, 2, 1, 2, 2)
    states, mask = torch.zeros(64, 3, 4), torch.ones(64, 3, dtype=torch.bool)
    for shift in (None, 4.0):
        flow_matching_loss(model, x0, states, mask, generator=torch.Generator().manual_seed(3), timestep_shift=shift)
    assert torch.allclose(seen[1], time_shift(seen[0], 4.0), atol=1e-6)
    assert float(seen[1].mean()) > float(seen[0].mean()) + 0.1


def test_add_noise_per_frame():
    x0, eps = torch.zeros(2, 3, 4, 2, 2), torch.ones(2, 3, 4, 2, 2)
    tt = torch.tensor([[0.0, 0.25, 0.5, 1.0], [1.0, 1.0, 0.0, 0.0]])
    xt = add_noise(x0, eps, tt)
    assert torch.allclose(xt[:, 0, :, 0, 0], tt)
    assert torch.allclose(add_noise(x0, eps, torch.tensor([0.3, 0.7]))[:, 0, 0, 0, 0], torch.tensor([0.3, 0.7]))


# ----- condition masks ---------------------------------------------------------------------------


def test_random_condition_mask_draws_every_mode_and_leaves_frames_to_generate():
    g = torch.Generator().manual_seed(0)
    m = random_condition_mask(4000, 7, generator=g)
    assert m.shape == (4000, 7) and m.dtype == torch.bool
    assert bool((~m).any(dim=1).all())  # always at least one generated frame
    none = ~m.any(1)
    assert 0.4 < float(none.float().mean()) < 0.6  # p_uncond_frames = 0.5
    first_only = m[:, 0] & ~m[:, 1:].any(1)
    first_k = m[:, 0] & m[:, 1] & ~m[:, -1]
    last_k = ~m[:, 0] & m[:, -1]
    both = m[:, 0] & m[:, -1]
    for kind in (first_only, first_k, last_k, both):
        assert int(kind.sum()) > 50
    # given frames are contiguous runs at the ends
    pos = torch.arange(7)
    for row in m[~none][:500]:
        a = int(torch.cumprod(row.int(), 0).sum())  # leading given frames
        b = int(torch.cumprod(row.flip(0).int(), 0).sum())  # trailing given frames
        assert torch.equal(row, (pos < a) | (pos >= 7 - b))
    assert not random_condition_mask(10, 7, generator=g, p_uncond_frames=1.0).any()
    assert not random_condition_mask(10, 1, generator=g, p_uncond_frames=0.0).any()
    m2 = random_condition_mask(200, 2, generator=g, p_uncond_frames=0.0)
    assert bool((~m2).any(1).all()) and bool(m2.any(1).all())


# ----- loss --------------------------------------------------------------------------------------


class Recorder(torch.nn.Module):
    """Predicts `value` everywhere; records its inputs."""

    def __init__(self, value=0.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(float(value)))

    def forward(self, x, t, states, mask):
        self.seen = (x.detach().clone(), t.detach().clone())
        return torch.zeros_like(x) + self.w


def test_flow_matching_loss_finite_and_masks_given_frames():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 4, 5, 4, 4, generator=g)
    states, mask = torch.randn(2, 3, 8), torch.ones(2, 3, dtype=torch.bool)
    cond = torch.tensor([[True, True, False, False, False], [False, False, False, False, True]])
    model = Recorder()
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0.3, 0.8])
    loss = flow_matching_loss(model, x0, states, mask, cond_mask=cond, timesteps=t, noise=noise)
    assert torch.isfinite(loss)
    xt, tt = model.seen
    assert torch.equal(tt[0], torch.tensor([0.0, 0.0, 0.3, 0.3, 0.3]))
    assert torch.equal(tt[1], torch.tensor([0.8, 0.8, 0.8, 0.8, 0.0]))
    assert torch.equal(xt[0, :, :2], x0[0, :, :2]) and torch.equal(xt[1, :, 4], x0[1, :, 4])  # given: clean
    # expected value: MSE of (0 - (eps - x0)) over generated frames only
    target = noise - x0
    w = (~cond)[:, None, :, None, None].float()
    expected = ((target**2) * w).sum() / (w.sum() * 4 * 4 * 4)
    assert loss.item() == pytest.approx(float(expected), rel=1e-5)
    # changing given frames' targets does not change the loss
    x0b = x0.clone()
    x0b[0, :, :2] += 100.0
    noise_b = noise.clone()
    noise_b[0, :, :2] -= 50.0
    loss_b = flow_matching_loss(model, x0b, states, mask, cond_mask=cond, timesteps=t, noise=noise_b)
    assert loss_b.item() == pytest.approx(loss.item(), rel=1e-5)
    loss.backward()
    assert model.w.grad is not None and torch.isfinite(model.w.grad)


def test_flow_matching_loss_all_given_is_zero_and_random_draws_work():
    x0 = torch.randn(2, 4, 3, 4, 4)
    states, mask = torch.randn(2, 3, 8), torch.ones(2, 3, dtype=torch.bool)
    model = Recorder(1.0)
    loss = flow_matching_loss(model, x0, states, mask, cond_mask=torch.ones(2, 3, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert float(model.w.grad) == 0.0
    g = torch.Generator().manual_seed(1)
    cond = random_condition_mask(2, 3, generator=g)
    a = flow_matching_loss(model, x0, states, mask, cond_mask=cond, generator=torch.Generator().manual_seed(3))
    b = flow_matching_loss(model, x0, states, mask, cond_mask=cond, generator=torch.Generator().manual_seed(3))
    assert torch.isfinite(a) and a.item() == b.item()


def test_flow_matching_loss_target_fn_replaces_the_flow_target():
    x0 = torch.randn(2, 4, 3, 4, 4)
    states, mask = torch.randn(2, 3, 8), torch.ones(2, 3, dtype=torch.bool)
    model = Recorder(2.0)
    t = torch.tensor([0.4, 0.9])
    seen = []

    def target_fn(x_t, tt):
        seen.append((x_t.clone(), tt.clone()))
        return torch.full_like(x_t, 2.0)

    loss = flow_matching_loss(model, x0, states, mask, timesteps=t, target_fn=target_fn)
    assert loss.item() == 0.0  # the model predicts the teacher's target exactly
    xt, tt = model.seen
    assert torch.equal(seen[0][0], xt) and torch.equal(seen[0][1], tt)  # the teacher sees the same x_t, t
    off = flow_matching_loss(model, x0, states, mask, timesteps=t, target_fn=lambda x_t, tt: torch.zeros_like(x_t))
    assert off.item() == pytest.approx(4.0)


def test_flow_matching_loss_with_the_real_transformer():
    from kinema.models.dit import DiTConfig, VideoDiT

    torch.manual_seed(0)
    model = VideoDiT(DiTConfig(in_channels=4, hidden_size=32, depth=1, num_heads=2, text_dim=8))
    x0 = torch.randn(2, 4, 3, 4, 4)
    states, mask = torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool)
    cond = torch.tensor([[True, False, False], [False, False, False]])
    loss = flow_matching_loss(model, x0, states, mask, cond_mask=cond, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and loss.ndim == 0
    loss.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


# ----- schedule and sampler ----------------------------------------------------------------------


@pytest.mark.parametrize("shift", [1.0, 2.5])
def test_timestep_schedule_monotone_from_1_to_0(shift):
    s = timestep_schedule(10, shift)
    assert s.shape == (11,) and s[0] == 1.0 and s[-1] == 0.0
    assert bool((s[1:] < s[:-1]).all())
    if shift > 1:
        assert bool((s[1:-1] > timestep_schedule(10, 1.0)[1:-1]).all())
    e = edit_schedule(10, shift, 0.5)
    assert e[0] == pytest.approx(0.5) and e[-1] == 0.0 and bool((e[1:] < e[:-1]).all())
    assert len(e) - 1 < 10
    with pytest.raises(ValueError):
        timestep_schedule(0, 1.0)


@pytest.mark.parametrize("shift", [1.0, 1.1, 6.0])
@pytest.mark.parametrize("strength", [0.05, 0.3, 0.6, 0.95])
def test_edit_schedule_runs_strength_times_steps_spaced_like_the_shifted_schedule(shift, strength):
    e = edit_schedule(20, shift, strength)
    assert len(e) - 1 == max(1, round(strength * 20))
    assert e[0] == pytest.approx(strength) and e[-1] == 0.0 and bool((e[1:] < e[:-1]).all())
    u = torch.tensor([unshift_time(float(t), shift) for t in e], dtype=torch.float64)
    gaps = u[:-1] - u[1:]
    assert torch.allclose(gaps, gaps[0].expand_as(gaps), atol=1e-6)  # uniform before the shift
    if shift == 1.0 and strength in (0.3, 0.6):  # on the grid: the tail of the full schedule
        full = timestep_schedule(20, 1.0)
        assert torch.allclose(e, full[full <= strength + 1e-6], atol=1e-6)


def test_unshift_time_inverts_time_shift():
    for s in (0.5, 1.0, 3.0, 6.0):
        for t in (0.0, 0.2, 0.6, 1.0):
            assert time_shift(unshift_time(t, s), s) == pytest.approx(t)
    with pytest.raises(ValueError):
        unshift_time(0.5, 0.0)


class ToPoint(torch.nn.Module):
    """The exact velocity field for data that is a single point c: v = (x_t - c) / t."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.calls = 0

    def forward(self, x, t, states, mask):
        self.calls += 1
        tt = t[:, None, :, None, None].clamp_min(1e-6)
        return (x - self.c.expand_as(x)) / tt


@pytest.mark.parametrize("sampler", ["euler", "heun", "multistep", "stochastic"])
def test_sampler_integrates_the_flow_and_keeps_given_frames(sampler):
    g = torch.Generator().manual_seed(0)
    c = torch.randn(1, 2, 4, 2, 2, generator=g)
    noise = torch.randn(1, 2, 4, 2, 2, generator=g)
    states, mask = torch.zeros(1, 3, 8), torch.ones(1, 3, dtype=torch.bool)
    model = ToPoint(c)
    out = sample(model, noise, states, mask, steps=4, shift=2.0, sampler=sampler, guidance=1.0)
    assert torch.allclose(out, c, atol=1e-5)
    # given frames stay exactly what was given
    cond = torch.randn(1, 2, 4, 2, 2, generator=g)
    cmask = torch.tensor([True, False, False, True])
    steps_seen = []
    out = sample(model, noise, states, mask, steps=3, sampler=sampler, guidance=1.0, cond_latents=cond,
                 cond_mask=cmask, progress=lambda i, n: steps_seen.append((i, n)))
    assert torch.equal(out[:, :, 0], cond[:, :, 0]) and torch.equal(out[:, :, 3], cond[:, :, 3])
    assert torch.allclose(out[:, :, 1:3], c[:, :, 1:3], atol=1e-5)
    assert steps_seen == [(1, 3), (2, 3), (3, 3)]


def test_stochastic_sampler_draws_fresh_noise_per_sample_from_its_generator():
    class Shrink(torch.nn.Module):
        """A velocity that depends on x, so that the noise drawn along the way shows in the result."""

        def forward(self, x, t, states, mask):
            return 0.5 * x + 1.0

    states, mask = torch.zeros(2, 3, 8), torch.ones(2, 3, dtype=torch.bool)
    noise = torch.randn(2, 2, 3, 2, 2, generator=torch.Generator().manual_seed(9))
    kw = dict(steps=5, shift=3.0, sampler="stochastic", guidance=1.0)

    def gens(*seeds):
        return [torch.Generator().manual_seed(s) for s in seeds]

    batch = sample(Shrink(), noise, states, mask, generators=gens(3, 4), **kw)
    alone = [sample(Shrink(), noise[i:i + 1], states[:1], mask[:1], generators=gens(s), **kw)
             for i, s in enumerate((3, 4))]
    assert torch.allclose(batch, torch.cat(alone), atol=1e-6)  # a sample does not depend on its batch
    again = sample(Shrink(), noise, states, mask, generators=gens(3, 4), **kw)
    assert torch.equal(batch, again)  # the same generators, the same result
    other = sample(Shrink(), noise, states, mask, generators=gens(3, 5), **kw)
    assert torch.equal(other[0], batch[0]) and not torch.allclose(other[1], batch[1])
    euler = sample(Shrink(), noise, states, mask, steps=5, shift=3.0, sampler="euler", guidance=1.0)
    assert not torch.allclose(euler, batch)  # the fresh noise replaces the predicted noise
    with pytest.raises(ValueError, match="one per sample"):
        sample(Shrink(), noise, states, mask, generators=gens(3), **kw)


def test_second_order_samplers_follow_a_curved_flow_closer_than_euler():
    class Exponential(torch.nn.Module):
        """dx/dt = x: integrating from t = 1 to 0 multiplies x by exp(-1)."""

        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x, t, states, mask):
            self.calls += 1
            return x

    x1 = torch.randn(1, 2, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    exact = x1 * math.exp(-1.0)
    states, mask = torch.zeros(1, 3, 8), torch.ones(1, 3, dtype=torch.bool)
    errors, calls = {}, {}
    for sampler in ("euler", "heun", "multistep"):
        model = Exponential()
        out = sample(model, x1, states, mask, steps=6, shift=3.0, sampler=sampler, guidance=1.0)
        errors[sampler] = float((out - exact).abs().max())
        calls[sampler] = model.calls
    assert calls == {"euler": 6, "heun": 11, "multistep": 6}
    assert errors["multistep"] < 0.25 * errors["euler"], errors
    assert errors["heun"] < errors["euler"], errors


def test_sampler_guidance_batches_cond_and_uncond():
    class TextShift(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.batches = []

        def forward(self, x, t, states, mask):
            self.batches.append(x.shape[0])
            return torch.zeros_like(x) + states[:, 0, 0].view(-1, 1, 1, 1, 1)

    model = TextShift()
    noise = torch.zeros(1, 2, 1, 2, 2)
    cs, cm = torch.full((1, 3, 4), 2.0), torch.ones(1, 3, dtype=torch.bool)
    us, um = torch.full((1, 5, 4), 1.0), torch.ones(1, 5, dtype=torch.bool)  # other length: padded
    out = sample(model, noise, cs, cm, uncond_states=us, uncond_mask=um, guidance=3.0, steps=1)
    # v = 1 + 3 (2 - 1) = 4; one Euler step of dt = -1
    assert torch.allclose(out, torch.full_like(out, -4.0))
    assert model.batches == [2]
    out1 = sample(model, noise, cs, cm, uncond_states=us, uncond_mask=um, guidance=1.0, steps=1)
    assert torch.allclose(out1, torch.full_like(out1, -2.0)) and model.batches[-1] == 1


def test_sampler_guides_only_inside_the_guidance_interval():
    class TextShift(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = []  # (batch, time, layout's value)

        def forward(self, x, t, states, mask, layout=None):
            self.calls.append((x.shape[0], round(float(t[0, 0]), 3), float(layout[0, 0, 0, 0, 0])))
            return torch.zeros_like(x) + states[:, 0, 0].view(-1, 1, 1, 1, 1)

    noise = torch.zeros(1, 2, 1, 2, 2)
    cs, cm = torch.full((1, 3, 4), 2.0), torch.ones(1, 3, dtype=torch.bool)
    us, um = torch.full((1, 3, 4), 1.0), torch.ones(1, 3, dtype=torch.bool)
    layout = torch.full((1, 5, 1, 2, 2), 7.0)
    model = TextShift()
    out = sample(model, noise, cs, cm, uncond_states=us, uncond_mask=um, guidance=3.0, steps=4,
                 layout=layout, guidance_interval=(0.0, 0.6))
    # t = 1 and 0.75 outside: the conditional prediction alone (v = 2, with the layout); 0.5 and 0.25
    # inside: guided (v = 1 + 3 (2 - 1) = 4). Euler steps of 0.25.
    assert [(b, t) for b, t, _ in model.calls] == [(1, 1.0), (1, 0.75), (2, 0.5), (2, 0.25)]
    assert all(value == 7.0 for _, _, value in model.calls)
    assert torch.allclose(out, torch.full_like(out, -0.25 * (2 + 2 + 4 + 4)))
    every = sample(TextShift(), noise, cs, cm, uncond_states=us, uncond_mask=um, guidance=3.0, steps=4,
                   layout=layout)
    whole = sample(TextShift(), noise, cs, cm, uncond_states=us, uncond_mask=um, guidance=3.0, steps=4,
                   layout=layout, guidance_interval=(0.0, 1.0))
    assert torch.equal(every, whole) and torch.allclose(every, torch.full_like(every, -4.0))
    for bad in ((0.8, 0.2), (0.0, 1.5), (0.5,), "0,1"):
        with pytest.raises(ValueError, match="guidance_interval"):
            sample(model, noise, cs, cm, uncond_states=us, uncond_mask=um, guidance=3.0, steps=4,
                   guidance_interval=bad)


def test_guided_velocity_is_the_sampling_rule():
    from kinema.diffusion.sampling import guidance_text, guided_velocity

    model = lambda x, t, states, mask: torch.zeros_like(x) + states[:, 0, 0].view(-1, 1, 1, 1, 1)  # noqa: E731
    x, tt = torch.zeros(2, 2, 1, 2, 2), torch.full((2, 1), 0.5)
    cs, cm = torch.full((2, 3, 4), 2.0), torch.ones(2, 3, dtype=torch.bool)
    us, um = torch.full((2, 5, 4), 1.0), torch.ones(2, 5, dtype=torch.bool)
    states, mask = guidance_text(cs, cm, us, um)
    assert states.shape == (4, 5, 4) and not mask[:2, 3:].any() and mask[2:].all()
    assert torch.allclose(guided_velocity(model, x, tt, states, mask, 3.0), torch.full_like(x, 4.0))


def test_sampler_edit_starts_from_noised_init():
    c = torch.ones(1, 2, 2, 2, 2) * 3.0
    model = ToPoint(c)
    init = torch.zeros(1, 2, 2, 2, 2)
    noise = torch.zeros(1, 2, 2, 2, 2)
    calls = []
    out = sample(model, noise, torch.zeros(1, 1, 4), torch.ones(1, 1, dtype=torch.bool), guidance=1.0, steps=10,
                 start_t=0.4, init_latents=init, progress=lambda i, n: calls.append(n))
    assert len(calls) == 4 and calls[0] == 4
    assert torch.allclose(out, c, atol=1e-4)
    with pytest.raises(ValueError):
        sample(model, noise, torch.zeros(1, 1, 4), torch.ones(1, 1, dtype=torch.bool), start_t=0.5)
    with pytest.raises(ValueError):
        sample(model, noise, torch.zeros(1, 1, 4), torch.ones(1, 1, dtype=torch.bool), sampler="ddim")


def test_flow_matching_loss_object_weight_adds_the_error_over_foreground_positions():
    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(2, 3, 4, 4, 4, generator=g)
    noise = torch.randn(x0.shape, generator=g)
    states, mask = torch.randn(2, 3, 8), torch.ones(2, 3, dtype=torch.bool)
    cond = torch.tensor([[True, False, False, False], [False, False, False, False]])
    t = torch.tensor([0.3, 0.7])
    model = Recorder(0.5)

    def foreground(z):  # "objects": positions whose channel 0 is above 1
        return z[:, 0] > 1.0

    base = flow_matching_loss(model, x0, states, mask, cond_mask=cond, timesteps=t, noise=noise)
    loss = flow_matching_loss(model, x0, states, mask, cond_mask=cond, timesteps=t, noise=noise,
                              foreground_fn=foreground, object_weight=2.0)
    tt = torch.tensor([[0.0, 0.3, 0.3, 0.3], [0.7, 0.7, 0.7, 0.7]])
    x_t = (1 - tt[:, None, :, None, None]) * x0 + tt[:, None, :, None, None] * noise
    implied = x_t - tt[:, None, :, None, None] * 0.5  # x_t - t * prediction
    fg = (foreground(x0) | foreground(implied)) & ~cond[:, :, None, None]
    err = (0.5 - (noise - x0)) ** 2
    object_error = (err * fg[:, None]).sum() / (fg.sum() * 3)
    expected = base.detach() + 2.0 * object_error
    assert 0 < fg.float().mean() < 1
    assert loss.item() == pytest.approx(float(expected), rel=1e-5)
    # the terms apart, as training logs them
    terms = flow_matching_loss_terms(model, x0, states, mask, cond_mask=cond, timesteps=t, noise=noise,
                                     foreground_fn=foreground, object_weight=2.0)
    assert terms.flow.item() == base.item()
    assert terms.object.item() == pytest.approx(float(object_error), rel=1e-5)
    assert terms.total.item() == loss.item()
    assert flow_matching_loss_terms(model, x0, states, mask, cond_mask=cond, timesteps=t, noise=noise).object is None
    # without a foreground function, or at weight 0, the loss is the plain flow loss
    assert flow_matching_loss(model, x0, states, mask, cond_mask=cond, timesteps=t, noise=noise,
                              foreground_fn=foreground, object_weight=0.0).item() == base.item()


def test_flow_matching_loss_object_balance_lets_a_small_object_count_as_much_as_a_large_one():
    x0 = torch.zeros(1, 2, 1, 16, 16)
    x0[:, 0, :, 1:7, 1:7] = 2.0  # a large object, 36 cells
    x0[:, 0, :, 11:13, 11:13] = 2.0  # a small one, 4 cells
    noise = torch.zeros_like(x0)
    states, mask = torch.randn(1, 3, 8), torch.ones(1, 3, dtype=torch.bool)
    t = torch.tensor([0.5])

    class ErrOnSmall(torch.nn.Module):  # predicts the target exactly except on the small object
        def forward(self, x, tt, s, m):
            pred = noise - x0
            pred[:, :, :, 11:13, 11:13] += 1.0
            return pred

    def foreground(z):
        return z[:, 0] > 1.0

    def object_term(balance: bool) -> float:
        return flow_matching_loss_terms(ErrOnSmall(), x0, states, mask, timesteps=t, noise=noise,
                                        foreground_fn=foreground, object_weight=1.0,
                                        object_balance=balance).object.item()

    plain, balanced = object_term(False), object_term(True)
    assert plain == pytest.approx(4 / 40)  # the small object's share of the object cells
    assert balanced > 2.5 * plain  # its few cells now weigh about as much as the large object's many
    assert balanced < 0.75
