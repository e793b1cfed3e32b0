"""Rectified flow: noising, timestep sampling with a resolution-dependent shift, and the loss.

Conventions (shared by training and sampling):

    x_t = (1 - t) * x0 + t * eps        t in [0, 1]; t = 0 is clean data, t = 1 pure noise
    v   = eps - x0                      what the network predicts (dx_t / dt)

Every latent frame carries its own timestep, so frames given by the user (an image, the end of
a clip, two clips to connect) sit at t = 0 and stay clean while the others are generated. The
training mask sampler `random_condition_mask` draws all the conditioning modes of DESIGN §2 so
one model does text->video, image->video, extension, connection and loops.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..object_weights import area_balanced_weights

__all__ = [
    "add_noise",
    "time_shift",
    "unshift_time",
    "shift_for_tokens",
    "num_tokens_for",
    "sample_timesteps",
    "random_condition_mask",
    "frame_timesteps",
    "flow_matching_loss",
    "flow_matching_loss_terms",
    "FlowLossTerms",
]


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
    """x_t = (1 - t) x0 + t eps. `t` is a number, [B] (per sample) or [B, T] (per latent frame)
    for latents shaped [B, C, T, H, W]."""
    if not torch.is_tensor(t):
        return (1.0 - t) * x0 + t * noise
    t = t.to(device=x0.device, dtype=x0.dtype)
    if t.ndim == 1:
        t = t.view(-1, 1, 1, 1, 1)
    elif t.ndim == 2:
        t = t[:, None, :, None, None]
    return (1.0 - t) * x0 + t * noise


def time_shift(t, shift: float):
    """Warp t towards 1 (more noise) for shift > 1: t' = s t / (1 + (s - 1) t), as in SD3/flux.

    Keeps 0 -> 0 and 1 -> 1 and is monotone; shift = 1 is the identity. Works on floats and tensors.
    """
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}")
    if shift == 1.0:
        return t
    return shift * t / (1.0 + (shift - 1.0) * t)


def unshift_time(t: float, shift: float) -> float:
    """The inverse of `time_shift`: the u with time_shift(u, shift) == t."""
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}")
    return t / (shift - (shift - 1.0) * t)


def shift_for_tokens(num_tokens: float, base_tokens: int = 256, base_shift: float = 1.0,
                     max_tokens: int = 4096, max_shift: float = 3.0) -> float:
    """The time shift for a sequence of `num_tokens` transformer tokens.

    More tokens carry more redundant signal, so the same noise level destroys less of the picture;
    shifting t up compensates (SD3, flux). Linear in the token count between (base_tokens,
    base_shift) and (max_tokens, max_shift), clamped to that range outside it.
    """
    if max_tokens <= base_tokens:
        raise ValueError("max_tokens must be larger than base_tokens")
    frac = (float(num_tokens) - base_tokens) / float(max_tokens - base_tokens)
    frac = min(1.0, max(0.0, frac))
    return float(base_shift + frac * (max_shift - base_shift))


def num_tokens_for(latent_shape, patch_size=(1, 2, 2)) -> int:
    """Tokens the transformer sees for latents [.., C, T, H, W] (or a (T, H, W) tuple)."""
    t, h, w = (int(s) for s in tuple(latent_shape)[-3:])
    pt, ph, pw = patch_size
    return max(1, (t // pt) * (h // ph) * (w // pw))


def sample_timesteps(batch: int, generator: torch.Generator | None = None, num_tokens: int | None = None,
                     device=None, mean: float = 0.0, std: float = 1.0, shift: float | None = None,
                     **shift_kwargs) -> torch.Tensor:
    """Training timesteps [B]: logit-normal (sigmoid of N(mean, std)), then shifted.

    A fixed `shift` wins; otherwise the shift follows the token count, and with `num_tokens` None
    no shift is applied. Draws on the CPU from `generator` so results do not depend on the device;
    the result is moved to `device`.
    """
    u = torch.randn(batch, generator=generator) * std + mean
    t = torch.sigmoid(u)
    if shift is not None:
        t = time_shift(t, shift)
    elif num_tokens is not None:
        t = time_shift(t, shift_for_tokens(num_tokens, **shift_kwargs))
    return t.to(device) if device is not None else t


def random_condition_mask(batch: int, latent_frames: int, generator: torch.Generator | None = None,
                          p_uncond_frames: float = 0.5) -> torch.Tensor:
    """Which latent frames are given (True = clean, t = 0) for each sample: [B, T] bool.

    With probability `p_uncond_frames` none (text->video); otherwise, uniformly, one of
    first frame (image->video), first k (extend forward), last k (extend backward) and
    first k + last k (connect; a loop is first + last with the same frames). At least one frame
    is always left to generate, so a clip of one latent frame is never conditioned.
    """
    mask = torch.zeros(batch, latent_frames, dtype=torch.bool)
    if latent_frames < 2:
        return mask
    draws = torch.rand(batch, 3, generator=generator)
    modes = torch.randint(0, 4, (batch,), generator=generator)
    for b in range(batch):
        if float(draws[b, 0]) < p_uncond_frames:
            continue
        mode = int(modes[b])
        # k in [1, T-1] for one-sided modes; the two sides of "connect" leave >= 1 frame free.
        if mode == 0:
            mask[b, 0] = True
        elif mode == 1:
            k = 1 + int(float(draws[b, 1]) * (latent_frames - 1))
            mask[b, :min(k, latent_frames - 1)] = True
        elif mode == 2:
            k = 1 + int(float(draws[b, 1]) * (latent_frames - 1))
            mask[b, latent_frames - min(k, latent_frames - 1):] = True
        else:
            if latent_frames < 3:
                mask[b, 0] = True  # no room for both ends: fall back to the first frame
                continue
            room = latent_frames - 1  # frames the two ends may share
            k1 = 1 + int(float(draws[b, 1]) * (room - 1))
            k1 = min(k1, room - 1)
            k2 = 1 + int(float(draws[b, 2]) * (room - k1))
            k2 = min(k2, room - k1)
            mask[b, :k1] = True
            mask[b, latent_frames - k2:] = True
    return mask


def frame_timesteps(t: torch.Tensor, latent_frames: int, cond_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-frame timesteps [B, T] from per-sample t [B]; given frames (cond_mask True) get 0."""
    tt = t.reshape(-1, 1).expand(-1, latent_frames).clone()
    if cond_mask is not None:
        tt = tt.masked_fill(cond_mask.to(tt.device), 0.0)
    return tt


class FlowLossTerms(NamedTuple):
    """`total` = `flow` + object_weight * `object` + grounding_weight * `grounding` + pair_weight *
    `pair`; a term that is not used is None."""

    total: torch.Tensor
    flow: torch.Tensor
    object: torch.Tensor | None
    grounding: torch.Tensor | None = None
    pair: torch.Tensor | None = None


def flow_matching_loss(model, x0: torch.Tensor, text_states: torch.Tensor, text_mask: torch.Tensor,
                       cond_mask: torch.Tensor | None = None, generator: torch.Generator | None = None,
                       timesteps: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                       patch_size=(1, 2, 2), target_fn=None, foreground_fn=None,
                       object_weight: float = 0.0, timestep_shift: float | None = None) -> torch.Tensor:
    """The training loss; see `flow_matching_loss_terms`."""
    return flow_matching_loss_terms(model, x0, text_states, text_mask, cond_mask, generator, timesteps, noise,
                                    patch_size, target_fn, foreground_fn, object_weight, timestep_shift).total


def flow_matching_loss_terms(model, x0: torch.Tensor, text_states: torch.Tensor, text_mask: torch.Tensor,
                             cond_mask: torch.Tensor | None = None, generator: torch.Generator | None = None,
                             timesteps: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                             patch_size=(1, 2, 2), target_fn=None, foreground_fn=None,
                             object_weight: float = 0.0, timestep_shift: float | None = None,
                             grounding_fn=None, grounding_weight: float = 0.0,
                             paired: bool = False, pair_weight: float = 0.0,
                             layout: torch.Tensor | None = None,
                             object_balance: bool = False) -> FlowLossTerms:
    """Rectified-flow loss for latents x0 [B, C, T, H, W], with its terms apart for logging.

    Each sample draws one t (logit-normal, shifted by `timestep_shift` or else for its token count)
    shared by its generated frames; frames with cond_mask [B, T] True are given: t = 0, clean in x_t, and left out of the
    loss. The loss is the MSE between the prediction and eps - x0 over generated frames (0, with
    a gradient of 0, when every frame is given). `cond_mask` None means no frame is given.
    `timesteps` [B] and `noise` may be passed to override the random draws. `target_fn(x_t, tt)`,
    when given, replaces eps - x0 as the target (distillation from a teacher's velocity).

    With `object_weight` > 0, `foreground_fn(latents) -> [B, T, H, W] bool` marks where objects
    are, and the loss adds object_weight * the same error averaged over the positions that are
    foreground in x0 or in the clean latents the prediction implies (x_t - t * pred): objects are
    a few percent of a frame, so a whole-frame mean barely charges for a misdrawn or spurious one.
    With `object_balance` those positions are weighed so that each object counts about the same
    whatever its size (`area_balanced_weights`): a plain mean weighs a large object's cells about
    four times a small one's, and it is the small ones whose shapes come out wrong.

    With `grounding_weight` > 0, `grounding_fn(maps) -> scalar` is given the model's
    cross-attention probabilities of this same forward (per block, [B, heads, N, L]) and the loss
    adds grounding_weight * its value (`kinema.train.grounding`).

    With `paired` the batch's two halves are pairs (sample i and i + B/2, e.g. a scene and its
    mirror): the t and noise drawn here are drawn for the first half and repeated for the second.
    With `pair_weight` > 0 (halves paired, whether drawn here or given), the loss adds pair_weight
    * the error of the pair's *difference*, MSE((pred_i - pred_j) - (target_i - target_j)) / 4.
    The plain loss is this plus the error of the pairs' means, MSE((err_i + err_j) / 2), so the
    term weighs up exactly the part of the gradient that tells the two apart (at high noise: the
    words): pair_weight 1 counts that part twice.

    `layout` [B, K, T, H, W] (`kinema.layout`), when given, goes to the model with the latents.
    """
    if x0.ndim != 5:
        raise ValueError(f"x0 must be [B, C, T, H, W], got {tuple(x0.shape)}")
    b, c, t_frames, h, w = x0.shape
    if cond_mask is None:
        cond_mask = torch.zeros(b, t_frames, dtype=torch.bool, device=x0.device)
    cond_mask = cond_mask.to(device=x0.device, dtype=torch.bool)
    if cond_mask.shape != (b, t_frames):
        raise ValueError(f"cond_mask must be [B, T] = {(b, t_frames)}, got {tuple(cond_mask.shape)}")
    if (paired or pair_weight > 0) and b % 2:
        raise ValueError(f"{'pair_weight' if pair_weight > 0 else 'paired'}: the batch must hold pairs "
                         f"(an even size), got {b}")
    draws = b // 2 if paired else b

    def repeat(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x]) if paired else x

    if timesteps is None:
        timesteps = repeat(sample_timesteps(draws, generator, num_tokens=num_tokens_for(x0.shape, patch_size),
                                            shift=timestep_shift))
    timesteps = timesteps.to(device=x0.device, dtype=x0.dtype)
    if noise is None:
        noise = repeat(torch.randn((draws,) + tuple(x0.shape[1:]), generator=generator, dtype=x0.dtype)).to(x0.device)
    tt = frame_timesteps(timesteps, t_frames, cond_mask)
    x_t = add_noise(x0, noise, tt)
    use_grounding = grounding_weight > 0 and grounding_fn is not None
    maps: list[torch.Tensor] | None = [] if use_grounding else None
    extra = {} if layout is None else {"layout": layout}
    pred = model(x_t, tt, text_states, text_mask, **extra) if maps is None else model(
        x_t, tt, text_states, text_mask, cross_attention=maps, **extra)
    if target_fn is None:
        target = noise - x0
    else:
        with torch.no_grad():
            target = target_fn(x_t, tt)
    err = (pred.float() - target.float()).pow(2)
    weight = (~cond_mask).to(err.dtype)[:, None, :, None, None]
    denom = weight.sum() * c * h * w
    loss = (err * weight).sum() / denom.clamp_min(1.0)
    total, ground, pair = loss, None, None
    if use_grounding:
        ground = grounding_fn(maps)
        total = total + grounding_weight * ground
    if pair_weight > 0:
        half = b // 2
        diff = (pred[:half].float() - pred[half:].float()) - (target[:half].float() - target[half:].float())
        pair = 0.25 * (diff.pow(2) * weight[:half]).sum() / (weight[:half].sum() * c * h * w).clamp_min(1.0)
        total = total + pair_weight * pair
    if not (object_weight > 0 and foreground_fn is not None):
        return FlowLossTerms(total, loss, None, ground, pair)
    with torch.no_grad():
        implied_x0 = x_t.float() - tt.float()[:, None, :, None, None] * pred.float()
        fg = foreground_fn(x0.float()) | foreground_fn(implied_x0)
        fg_map = area_balanced_weights(fg) if object_balance else fg.to(err.dtype)
        fg_weight = weight[:, 0] * fg_map.to(err.dtype)  # [B, T, H, W], generated frames only
    fg_err = (err * fg_weight[:, None]).sum() / (fg_weight.sum() * c).clamp_min(1.0)
    return FlowLossTerms(total + object_weight * fg_err, loss, fg_err, ground, pair)
