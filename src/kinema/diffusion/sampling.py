"""Sampling the rectified flow: Euler, Heun and a two-step multistep method, classifier-free
guidance, frame conditioning.

The sampler integrates dx/dt = v(x_t, t) from t = 1 (noise) down to t = 0. Every latent frame has
its own timestep: frames the caller gives (cond_mask True) are set to their latents, fed to the
network at t = 0 and never overwritten, which is how image->video, extension, connection and
loops work. Video->video edits start from given latents noised to `start_t` (the strength)
instead of pure noise.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..sampler_names import SAMPLERS
from .flow import add_noise, time_shift, unshift_time

__all__ = ["timestep_schedule", "edit_schedule", "sample", "guidance_text", "guided_velocity",
           "check_guidance_interval", "SAMPLERS"]


def timestep_schedule(steps: int, shift: float = 1.0) -> torch.Tensor:
    """steps + 1 timesteps from 1 down to 0 (float32), uniform before the time shift."""
    return edit_schedule(steps, shift, 1.0)


def edit_schedule(steps: int, shift: float = 1.0, start_t: float = 1.0) -> torch.Tensor:
    """`timestep_schedule(steps, shift)` started at `start_t` (at most 1) instead of 1.

    An edit at strength s runs round(s * steps) steps (at least one), spaced like the shifted
    schedule: uniform in the unshifted time from the preimage of `start_t` down to 0. Cutting the
    full schedule at `start_t` instead would leave a large shift only a few steps below it."""
    if int(steps) < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    start_t = min(float(start_t), 1.0)
    n = max(1, round(start_t * int(steps)))
    u0 = 1.0 if start_t == 1.0 else unshift_time(start_t, float(shift))  # exactly 1: the full schedule
    u = torch.linspace(u0, 0.0, n + 1, dtype=torch.float64)
    t = time_shift(u, float(shift))
    t[0], t[-1] = start_t, 0.0
    return t.to(torch.float32)


def _pad_text(states: torch.Tensor, mask: torch.Tensor, length: int):
    extra = length - states.shape[1]
    if extra <= 0:
        return states, mask
    states = F.pad(states, (0, 0, 0, extra))
    mask = F.pad(mask, (0, extra), value=False)
    return states, mask


def guidance_text(text_states: torch.Tensor, text_mask: torch.Tensor, uncond_states: torch.Tensor,
                  uncond_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Conditional then unconditional text states (and masks) in one batch, padded to one length."""
    length = max(text_states.shape[1], uncond_states.shape[1])
    cs, cm = _pad_text(text_states, text_mask, length)
    us, um = _pad_text(uncond_states, uncond_mask, length)
    return torch.cat([cs, us]), torch.cat([cm, um])


def guided_velocity(model, x: torch.Tensor, tt: torch.Tensor, states: torch.Tensor, mask: torch.Tensor,
                    guidance: float, layout: torch.Tensor | None = None) -> torch.Tensor:
    """Classifier-free guidance v_u + g (v_c - v_u) from one batched forward; `states`/`mask` from
    `guidance_text`. Sampling steps with it, and guidance distillation learns it. A `layout` goes
    with the conditional half only: the unconditional one has neither words nor layout."""
    extra = {} if layout is None else {"layout": torch.cat([layout, torch.zeros_like(layout)])}
    v = model(torch.cat([x, x]), torch.cat([tt, tt]), states, mask, **extra)
    v_c, v_u = v.chunk(2)
    return v_u + float(guidance) * (v_c - v_u)


def check_guidance_interval(interval) -> tuple[float, float] | None:
    """A guidance interval as (lo, hi), checked: two times with 0 <= lo <= hi <= 1; None (every
    step guided) stays None. Raises ValueError naming `guidance_interval`."""
    if interval is None:
        return None
    wrong = f"guidance_interval must be two times (lo, hi) from 0 to 1, got {interval!r}"
    if isinstance(interval, str) or not hasattr(interval, "__len__") or len(interval) != 2 \
            or any(isinstance(v, bool) for v in interval):
        raise ValueError(wrong)
    try:
        lo, hi = float(interval[0]), float(interval[1])
    except (TypeError, ValueError):
        raise ValueError(wrong) from None
    if not 0.0 <= lo <= hi <= 1.0:  # NaN fails this too
        raise ValueError(f"guidance_interval must satisfy 0 <= lo <= hi <= 1, got {interval!r}")
    return lo, hi


def _expand_batch(x: torch.Tensor, batch: int, what: str) -> torch.Tensor:
    if x.shape[0] == batch:
        return x
    if x.shape[0] == 1:
        return x.expand(batch, *x.shape[1:])
    raise ValueError(f"{what} has batch {x.shape[0]}, the latents have {batch}")


@torch.no_grad()
def sample(model, noise: torch.Tensor, text_states: torch.Tensor, text_mask: torch.Tensor, *,
           uncond_states: torch.Tensor | None = None, uncond_mask: torch.Tensor | None = None,
           guidance: float = 5.0, steps: int = 20, shift: float = 1.0,
           cond_latents: torch.Tensor | None = None, cond_mask: torch.Tensor | None = None,
           start_t: float = 1.0, init_latents: torch.Tensor | None = None, sampler: str = "euler",
           progress: Callable[[int, int], None] | None = None,
           generators: list[torch.Generator] | None = None,
           layout: torch.Tensor | None = None,
           guidance_interval: tuple[float, float] | None = None) -> torch.Tensor:
    """Denoise `noise` [B, C, T, H, W] into latents.

    - Guidance: with `uncond_states` and guidance != 1, conditional and unconditional predictions
      come from one batched forward: v = v_u + g (v_c - v_u). The unconditional states are the
      empty prompt's, or a negative prompt's. `guidance_interval` (lo, hi) guides only the steps
      whose time t lies in [lo, hi] and takes the conditional prediction alone (one network call on
      half the batch) at the others; None guides every step.
    - Frame conditioning: `cond_mask` [B, T] or [T] bool marks given frames, whose values are
      taken from `cond_latents` (same shape as `noise`); they stay exactly equal to them.
    - Edit: with `init_latents` and start_t < 1 the sampler starts from init noised to start_t
      and follows the schedule from there.
    - `progress(step, total)` is called after each step (step counts from 1).
    - Samplers: "euler" (one network call per step), "heun" (two: second order), "multistep"
      (one call per step, second order: the Adams-Bashforth step for uneven steps, reusing the
      previous step's velocity, so it is about as accurate as Heun at half the cost), "stochastic"
      (one call per step: from the predicted clean latents x0 = x - t v, step to the next time
      with fresh noise instead of the predicted noise, as diffusers' FlowMatchEulerDiscreteScheduler
      does with `stochastic_sampling`; the fresh noise of sample b comes from `generators[b]`, so a
      batch gives each sample what it would get alone).
    - Layout: `layout` [B, K, T, H, W] (`kinema.layout`) for a transformer with layout channels.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if not 0.0 < float(start_t) <= 1.0:
        raise ValueError(f"start_t (strength) must be in (0, 1], got {start_t}")
    if noise.ndim != 5:
        raise ValueError(f"noise must be [B, C, T, H, W], got {tuple(noise.shape)}")
    b, _, t_frames = noise.shape[:3]
    device, dtype = noise.device, noise.dtype

    if cond_mask is not None:
        cond_mask = cond_mask.to(device=device, dtype=torch.bool)
        if cond_mask.ndim == 1:
            cond_mask = cond_mask[None].expand(b, -1)
        if cond_mask.shape != (b, t_frames):
            raise ValueError(f"cond_mask must be [B, T] = {(b, t_frames)}, got {tuple(cond_mask.shape)}")
        if not bool(cond_mask.any()):
            cond_mask = None
    if cond_mask is not None:
        if cond_latents is None or cond_latents.shape != noise.shape:
            raise ValueError("cond_latents must be given, shaped like the noise, when cond_mask is")
        cond_latents = cond_latents.to(device=device, dtype=dtype)
        frame_mask = cond_mask[:, None, :, None, None]

    def keep_given(x: torch.Tensor) -> torch.Tensor:
        return torch.where(frame_mask, cond_latents, x) if cond_mask is not None else x

    # Text: conditional and (optionally) unconditional states batched along the batch dimension.
    text_states = _expand_batch(text_states.to(device), b, "text_states")
    text_mask = _expand_batch(text_mask.to(device), b, "text_mask")
    use_cfg = uncond_states is not None and float(guidance) != 1.0
    if use_cfg:
        if uncond_mask is None:
            uncond_mask = torch.ones(uncond_states.shape[:2], dtype=torch.bool)
        uncond_states = _expand_batch(uncond_states.to(device), b, "uncond_states")
        uncond_mask = _expand_batch(uncond_mask.to(device), b, "uncond_mask")
        states, mask = guidance_text(text_states, text_mask, uncond_states, uncond_mask)
    else:
        states, mask = text_states, text_mask
    if layout is not None:
        layout = _expand_batch(layout.to(device=device, dtype=dtype), b, "layout")
    extra = {} if layout is None else {"layout": layout}

    lo, hi = check_guidance_interval(guidance_interval) or (0.0, 1.0)

    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        tt = torch.full((b, t_frames), float(t), device=device, dtype=dtype)
        if cond_mask is not None:
            tt = tt.masked_fill(cond_mask, 0.0)
        if use_cfg and lo <= t <= hi:
            return guided_velocity(model, x, tt, states, mask, guidance, layout)
        if use_cfg:  # the conditional half of the batched states alone
            return model(x, tt, states[:b], mask[:b], **extra)
        return model(x, tt, states, mask, **extra)

    if float(start_t) < 1.0:
        if init_latents is None:
            raise ValueError("start_t < 1 needs init_latents (the clip to edit)")
        x = add_noise(init_latents.to(device=device, dtype=dtype), noise, float(start_t))
    else:
        x = noise
    if sampler == "stochastic":
        if generators is None:
            generators = [torch.Generator().manual_seed(0) for _ in range(b)]
        if len(generators) != b:
            raise ValueError(f"generators: one per sample wanted ({b}), got {len(generators)}")
        sample_shape = (1, *x.shape[1:])

        def fresh_noise() -> torch.Tensor:
            return torch.cat([torch.randn(sample_shape, generator=g) for g in generators]).to(device, dtype)

    schedule = edit_schedule(steps, shift, float(start_t)).tolist()
    total = len(schedule) - 1
    x = keep_given(x)
    v_prev, dt_prev = None, 0.0
    for i in range(total):
        t_cur, t_next = schedule[i], schedule[i + 1]
        dt = t_next - t_cur
        v = velocity(x, t_cur)
        if sampler == "stochastic":
            x_next = (1.0 - t_next) * (x - t_cur * v) + t_next * fresh_noise()
        elif sampler == "multistep" and v_prev is not None:
            r = dt / (2.0 * dt_prev)
            x_next = x + dt * ((1.0 + r) * v - r * v_prev)
        else:
            x_next = x + dt * v
        v_prev, dt_prev = v, dt
        if sampler == "heun" and t_next > 0.0:
            v2 = velocity(keep_given(x_next), t_next)
            x_next = x + dt * 0.5 * (v + v2)
        x = keep_given(x_next)
        if progress is not None:
            progress(i + 1, total)
    return x
