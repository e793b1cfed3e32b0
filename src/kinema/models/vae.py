"""Causal 3D video autoencoder.

A clip of 1+4k frames, [B, 3, T, H, W] in [-1, 1], becomes latents [B, C, 1+k, H/8, W/8]: the
first frame is encoded alone, then each group of 4, so an image is a 1-frame clip in the same
latent space. Every temporal convolution pads on the past side only (replicating the first frame),
so output frame i depends on input frames <= i, in the encoder and in the decoder; normalisation is
GroupNorm over channels within one frame, which never mixes frames.

Layout (defaults):

    encoder  [3, T, H, W] --pixel-unshuffle 2--> [12, T, H/2, W/2] --conv--> stage 0 (base)
             --down (space x2, time x2)--> stage 1 (2*base) --down (x2, x2)--> stage 2 (4*base)
             --mid--> norm, SiLU, conv --> [2C] = posterior mean and log-variance
    decoder  the mirror, upsampling by a convolution to s_t*4 times the channels followed by a
             depth-to-space; the first frame's extra temporal copy is dropped so 1+k -> 1+2k.

The spatial factor not covered by the len(channel_mult)-1 downsamplings is taken by a
pixel-unshuffle at the input (pixel-shuffle at the output), so no layer runs at full resolution:
that is what keeps a 25x128x128 clip well under a second on two CPU cores.

Decoding can run in temporal chunks of latent frames. Each causal convolution then keeps the last
frames of its input in a cache and uses them as the past padding of the next chunk, so chunked and
full decoding agree up to float error while memory stays bounded by the chunk.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import KinemaError
from ..object_weights import area_balanced_weights


class ConfigError(KinemaError, ValueError):
    """A model configuration that cannot be used; the message names the key or value."""


def check_config_keys(cls, d: dict) -> None:
    """Refuse a non-dict or a key the config dataclass `cls` does not have, naming it."""
    if not isinstance(d, dict):
        raise ConfigError(f"{cls.__name__}.from_dict expects a dict, got {type(d).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(k for k in d if k not in known)
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} in {cls.__name__} (known keys: {', '.join(sorted(known))})"
        )


@dataclass
class VAEConfig:
    in_channels: int = 3
    latent_channels: int = 8
    base_channels: int = 32  # stage i has base_channels * channel_mult[i] channels
    channel_mult: tuple[int, ...] = (1, 2, 4)  # len-1 spatial x2 downsamplings; the rest of
    num_res_blocks: int = 1  # spatial_downsample is a pixel-unshuffle at the input
    temporal_downsample: int = 4  # causal x2 temporal stages (at the first downsamplings)
    spatial_downsample: int = 8
    decoder_extra_blocks: int = 0  # more residual blocks per decoder stage, each starting as the identity
    latent_mean: list[float] = field(default_factory=list)  # empty -> zeros
    latent_std: list[float] = field(default_factory=list)  # empty -> ones

    def __post_init__(self) -> None:
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        if not self.latent_mean:
            self.latent_mean = [0.0] * self.latent_channels
        if not self.latent_std:
            self.latent_std = [1.0] * self.latent_channels
        self.latent_mean = [float(v) for v in self.latent_mean]
        self.latent_std = [float(v) for v in self.latent_std]
        if len(self.latent_mean) != self.latent_channels or len(self.latent_std) != self.latent_channels:
            raise ConfigError(
                f"latent_mean and latent_std need {self.latent_channels} values (one per latent "
                f"channel), got {len(self.latent_mean)} and {len(self.latent_std)}"
            )
        if any(not (s > 0 and math.isfinite(s)) for s in self.latent_std):
            raise ConfigError(f"latent_std must be positive and finite, got {self.latent_std}")
        if not isinstance(self.decoder_extra_blocks, int) or self.decoder_extra_blocks < 0:
            raise ConfigError(f"decoder_extra_blocks must be a whole number >= 0, got {self.decoder_extra_blocks!r}")
        if not self.channel_mult or any(m < 1 for m in self.channel_mult):
            raise ConfigError(f"channel_mult must be positive integers, got {self.channel_mult}")
        n_down = len(self.channel_mult) - 1
        if self.spatial_downsample % (2**n_down) != 0:
            raise ConfigError(
                f"spatial_downsample={self.spatial_downsample} must be a multiple of 2**{n_down} "
                f"(one x2 per stage after the first of channel_mult={self.channel_mult})"
            )
        if self.temporal_downsample not in (1, 2, 4, 8) or self.temporal_downsample > 2**n_down:
            raise ConfigError(
                f"temporal_downsample={self.temporal_downsample} must be a power of two no larger "
                f"than 2**{n_down} (the number of downsampling stages)"
            )

    @property
    def patch_size(self) -> int:
        """Spatial factor taken by pixel-unshuffle before the first convolution."""
        return self.spatial_downsample // 2 ** (len(self.channel_mult) - 1)

    @property
    def num_temporal_stages(self) -> int:
        return int(math.log2(self.temporal_downsample))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channel_mult"] = list(self.channel_mult)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VAEConfig":
        check_config_keys(cls, d)
        return cls(**d)


# ----- building blocks --------------------------------------------------------------------------


def _groups(channels: int) -> int:
    for g in (32, 16, 8, 4, 2):
        if channels % g == 0 and channels // g >= 2:
            return g
    return 1


class FrameNorm(nn.GroupNorm):
    """GroupNorm over channels and space of each frame separately (never mixes frames)."""

    def __init__(self, channels: int):
        super().__init__(_groups(channels), channels, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        y = x.transpose(1, 2).reshape(b * t, c, h, w)
        y = super().forward(y)
        return y.reshape(b, t, c, h, w).transpose(1, 2)


class CausalConv3d(nn.Module):
    """3D convolution padded in time on the past side only, by replicating the first frame.

    With `cache` (a dict shared by one chunked decode), the past padding of a later chunk is the
    tail of the previous chunk's input instead, so chunked decoding equals full decoding.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: tuple[int, int] = (1, 1)):
        super().__init__()
        self.time_pad = kernel - 1
        self.space_pad = kernel // 2
        self.stride = stride  # (time, space)
        self.conv = nn.Conv3d(
            cin,
            cout,
            kernel,
            stride=(stride[0], stride[1], stride[1]),
            padding=(0, self.space_pad, self.space_pad),  # zeros in space, done by the conv
        )

    def forward(self, x: Tensor, cache: dict | None = None) -> Tensor:
        if self.time_pad:
            past = cache.get(self) if cache is not None else None
            if past is None:
                past = x[:, :, :1].expand(-1, -1, self.time_pad, -1, -1)
            x = torch.cat([past, x], dim=2)
            if cache is not None:
                if self.stride[0] != 1:
                    raise RuntimeError("chunked causal convolution supports temporal stride 1 only")
                cache[self] = x[:, :, -self.time_pad :].detach()
        return self.conv(x)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1 = FrameNorm(cin)
        self.conv1 = CausalConv3d(cin, cout)
        self.norm2 = FrameNorm(cout)
        self.conv2 = CausalConv3d(cout, cout)
        self.skip = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, cache: dict | None = None) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)), cache)
        h = self.conv2(F.silu(self.norm2(h)), cache)
        return self.skip(x) + h


class Downsample(nn.Module):
    """Space x2 and optionally time x2 with one strided causal convolution.

    Time: T = 1+2k frames -> 1+k; output frame j sees input frames 2j-2..2j (past-padded), so
    frame 0 is encoded alone.
    """

    def __init__(self, cin: int, cout: int, temporal: bool):
        super().__init__()
        self.conv = CausalConv3d(cin, cout, stride=(2 if temporal else 1, 2))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Space x2 and optionally time x2: a causal convolution to s_t*4*cout channels, then
    depth-to-space. In time, the first frame's extra copy is dropped (1+k -> 1+2k), only in the
    first chunk of a chunked decode."""

    def __init__(self, cin: int, cout: int, temporal: bool):
        super().__init__()
        self.st = 2 if temporal else 1
        self.cout = cout
        self.conv = CausalConv3d(cin, cout * self.st * 4)

    def forward(self, x: Tensor, cache: dict | None = None) -> Tensor:
        first_chunk = cache is None or self not in cache
        if cache is not None:
            cache[self] = True
        y = self.conv(x, cache)
        b, _, t, h, w = y.shape
        y = y.reshape(b, self.cout, self.st, 2, 2, t, h, w)
        y = y.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, self.cout, t * self.st, 2 * h, 2 * w)
        if self.st == 2 and first_chunk:
            y = y[:, :, 1:]
        return y


def _pixel_unshuffle(x: Tensor, p: int) -> Tensor:
    if p == 1:
        return x
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t, h // p, p, w // p, p).permute(0, 1, 4, 6, 2, 3, 5)
    return x.reshape(b, c * p * p, t, h // p, w // p)


def _pixel_shuffle(x: Tensor, p: int) -> Tensor:
    if p == 1:
        return x
    b, cpp, t, h, w = x.shape
    c = cpp // (p * p)
    x = x.reshape(b, c, p, p, t, h, w).permute(0, 1, 4, 5, 2, 6, 3)
    return x.reshape(b, c, t, h * p, w * p)


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.patch = cfg.patch_size
        widths = [cfg.base_channels * m for m in cfg.channel_mult]
        self.conv_in = CausalConv3d(cfg.in_channels * self.patch**2, widths[0])
        self.stages = nn.ModuleList()
        ch = widths[0]
        for i, width in enumerate(widths):
            stage = nn.Module()
            stage.blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                stage.blocks.append(ResBlock(ch, width))
                ch = width
            if i < len(widths) - 1:
                nxt = widths[i + 1]
                stage.down = Downsample(ch, nxt, temporal=i < cfg.num_temporal_stages)
                ch = nxt
            else:
                stage.down = None
            self.stages.append(stage)
        self.mid = nn.ModuleList([ResBlock(ch, ch), ResBlock(ch, ch)])
        self.norm_out = FrameNorm(ch)
        self.conv_out = CausalConv3d(ch, 2 * cfg.latent_channels)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(_pixel_unshuffle(x, self.patch))
        for stage in self.stages:
            for block in stage.blocks:
                h = block(h)
            if stage.down is not None:
                h = stage.down(h)
        for block in self.mid:
            h = block(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def _identity_block(ch: int) -> ResBlock:
    """A residual block whose last convolution is zero, so it passes its input through unchanged."""
    block = ResBlock(ch, ch)
    nn.init.zeros_(block.conv2.conv.weight)
    nn.init.zeros_(block.conv2.conv.bias)
    return block


def grown_decoder_keys(vae: "CausalVideoVAE") -> set[str]:
    """State-dict keys of `vae`'s extra decoder blocks (`decoder_extra_blocks`): the weights a
    decoder trained without them lacks. Loaded into a model built with them, such weights decode
    exactly as before, since every extra block starts as the identity. Each stage's extra blocks
    follow its `num_res_blocks` ordinary ones."""
    first_extra = vae.config.num_res_blocks
    return {k for k in vae.state_dict()
            if (m := re.match(r"decoder\.stages\.\d+\.blocks\.(\d+)\.", k)) and int(m.group(1)) >= first_extra}


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.patch = cfg.patch_size
        widths = [cfg.base_channels * m for m in cfg.channel_mult]
        ch = widths[-1]
        self.conv_in = CausalConv3d(cfg.latent_channels, ch)
        self.mid = nn.ModuleList([ResBlock(ch, ch), ResBlock(ch, ch)])
        self.stages = nn.ModuleList()
        for i in reversed(range(len(widths))):
            stage = nn.Module()
            stage.blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                stage.blocks.append(ResBlock(ch, widths[i]))
                ch = widths[i]
            for _ in range(cfg.decoder_extra_blocks):
                stage.blocks.append(_identity_block(ch))
            if i > 0:
                # mirrors the encoder: temporal upsampling where the encoder downsampled time
                stage.up = Upsample(ch, widths[i - 1], temporal=i - 1 < cfg.num_temporal_stages)
                ch = widths[i - 1]
            else:
                stage.up = None
            self.stages.append(stage)
        self.norm_out = FrameNorm(ch)
        self.conv_out = CausalConv3d(ch, cfg.in_channels * self.patch**2)

    def forward(self, z: Tensor, cache: dict | None = None) -> Tensor:
        h = self.conv_in(z, cache)
        for block in self.mid:
            h = block(h, cache)
        for stage in self.stages:
            for block in stage.blocks:
                h = block(h, cache)
            if stage.up is not None:
                h = stage.up(h, cache)
        h = self.conv_out(F.silu(self.norm_out(h)), cache)
        return _pixel_shuffle(h, self.patch)


# ----- the autoencoder -------------------------------------------------------------------------


def foreground_mask(x: Tensor, threshold: float = 0.1) -> Tensor:
    """[B, T, H, W] bool: pixels whose colour differs from their frame's per-channel median by more
    than `threshold` (in [-1, 1] units) in some channel. On flat backgrounds the median is the
    background, so this marks the objects; the union with the reconstruction's mask also marks
    ghosts, which a whole-frame mean barely charges for."""
    median = x.flatten(3).median(dim=3).values[..., None, None]
    return (x - median).abs().amax(dim=1) > threshold


class CausalVideoVAE(nn.Module):
    """KL-regularised causal video autoencoder; `encode` is deterministic (posterior mean)."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    # ----- shapes ----------------------------------------------------------------------------
    @staticmethod
    def check_input(T: int, H: int, W: int) -> None:
        """Raise ValueError unless T = 1+4k (k >= 0) and H, W are positive multiples of 8."""
        problems = []
        if T < 1 or (T - 1) % 4 != 0:
            problems.append(
                f"the number of frames must be 1+4k (1, 5, 9, 13, ...), got T={T}"
            )
        if H < 8 or H % 8 != 0:
            problems.append(f"the height must be a positive multiple of 8, got H={H}")
        if W < 8 or W % 8 != 0:
            problems.append(f"the width must be a positive multiple of 8, got W={W}")
        if problems:
            raise ConfigError("video autoencoder input: " + "; ".join(problems))

    def _check(self, T: int, H: int, W: int) -> None:
        cfg = self.config
        if (cfg.temporal_downsample, cfg.spatial_downsample) == (4, 8):
            self.check_input(T, H, W)
            return
        ft, fs = cfg.temporal_downsample, cfg.spatial_downsample
        if T < 1 or (T - 1) % ft or H < fs or H % fs or W < fs or W % fs:
            raise ConfigError(
                f"video autoencoder input: need T = 1+{ft}k frames and H, W multiples of {fs}, "
                f"got T={T}, H={H}, W={W}"
            )

    def latent_shape(self, T: int, H: int, W: int) -> tuple[int, int, int, int]:
        cfg = self.config
        return (
            cfg.latent_channels,
            1 + (T - 1) // cfg.temporal_downsample,
            H // cfg.spatial_downsample,
            W // cfg.spatial_downsample,
        )

    # ----- latent statistics ----------------------------------------------------------------
    def set_latent_stats(self, mean, std) -> None:
        """Store per-channel latent mean/std (of raw posterior means) in the config."""
        mean = [float(v) for v in torch.as_tensor(mean).flatten().tolist()]
        std = [float(v) for v in torch.as_tensor(std).flatten().tolist()]
        n = self.config.latent_channels
        if len(mean) != n or len(std) != n:
            raise ConfigError(f"need {n} latent means and stds, got {len(mean)} and {len(std)}")
        if any(not (s > 0 and math.isfinite(s)) for s in std):
            raise ConfigError(f"latent std must be positive and finite, got {std}")
        self.config.latent_mean = mean
        self.config.latent_std = std

    def _stats(self, like: Tensor) -> tuple[Tensor, Tensor]:
        shape = (1, -1, 1, 1, 1)
        mean = torch.tensor(self.config.latent_mean, device=like.device, dtype=like.dtype)
        std = torch.tensor(self.config.latent_std, device=like.device, dtype=like.dtype)
        return mean.view(shape), std.view(shape)

    def normalize(self, z: Tensor) -> Tensor:
        mean, std = self._stats(z)
        return (z - mean) / std

    def denormalize(self, z: Tensor) -> Tensor:
        mean, std = self._stats(z)
        return z * std + mean

    # ----- encode / decode --------------------------------------------------------------------
    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Raw (unnormalised) posterior mean and log-variance."""
        if x.ndim != 5 or x.shape[1] != self.config.in_channels:
            raise ConfigError(
                f"video autoencoder input must be [B, {self.config.in_channels}, T, H, W], "
                f"got {tuple(x.shape)}"
            )
        self._check(*x.shape[2:])
        moments = self.encoder(x)
        mean, logvar = moments.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def encode(self, x: Tensor) -> Tensor:
        """[B, 3, T, H, W] in [-1, 1] -> normalised latents [B, C, 1+(T-1)//4, H/8, W/8]."""
        mean, _ = self.posterior(x)
        return self.normalize(mean)

    def decode(self, z: Tensor, chunk_size: int | None = None) -> Tensor:
        """Normalised latents [B, C, t, h, w] -> [B, 3, 1+4(t-1), 8h, 8w] (not clamped).

        With chunk_size, decode `chunk_size` latent frames at a time, carrying causal context,
        so the result equals full decoding up to float error with memory bounded by the chunk.
        """
        if z.ndim != 5 or z.shape[1] != self.config.latent_channels:
            raise ConfigError(
                f"latents must be [B, {self.config.latent_channels}, t, h, w], got {tuple(z.shape)}"
            )
        z = self.denormalize(z)
        t = z.shape[2]
        if chunk_size is None or chunk_size >= t:
            return self.decoder(z)
        if chunk_size < 1:
            raise ConfigError(f"chunk_size must be at least 1, got {chunk_size}")
        cache: dict = {}
        parts = [self.decoder(z[:, :, i : i + chunk_size], cache) for i in range(0, t, chunk_size)]
        return torch.cat(parts, dim=2)

    # ----- training ---------------------------------------------------------------------------
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(reconstruction, normalised latents); samples the posterior while training."""
        mean, logvar = self.posterior(x)
        z = mean
        if self.training:
            z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        return self.decoder(z), self.normalize(mean)

    def loss(self, x: Tensor, kl_weight: float = 1e-4, motion_weight: float = 0.0,
             edge_weight: float = 0.0, object_weight: float = 0.0,
             object_balance: bool = False, latents: Tensor | None = None) -> dict[str, Tensor]:
        """dict(loss, recon, reg, rec): recon = MSE + L1 on pixels, plus L1 on frame-to-frame differences
        (`motion_weight`), on horizontal/vertical pixel differences (`edge_weight`) and MSE + L1
        averaged over foreground pixels only (`object_weight`, see `foreground_mask`; with
        `object_balance` each object counts about equally, see `area_balanced_weights`); reg = mean
        KL to N(0, 1); rec is the reconstruction itself.

        The difference terms exist because on mostly-flat frames a pixel loss is dominated by the
        background: a blurred or ghosting moving object costs little, yet it is what a viewer (and
        the analyzer) sees first.

        `latents` (raw, as `posterior` gives them) are decoded instead of the encoder's, for training
        the decoder alone on latents made another way; reg is then 0."""
        if latents is None:
            mean, logvar = self.posterior(x)
            z = mean
            if self.training:
                z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        else:
            z = latents
        rec = self.decoder(z)
        recon = F.mse_loss(rec, x) + F.l1_loss(rec, x)
        if motion_weight > 0 and x.shape[2] > 1:
            recon = recon + motion_weight * F.l1_loss(rec.diff(dim=2), x.diff(dim=2))
        if edge_weight > 0:
            recon = recon + edge_weight * (F.l1_loss(rec.diff(dim=3), x.diff(dim=3))
                                           + F.l1_loss(rec.diff(dim=4), x.diff(dim=4)))
        if object_weight > 0:
            mask = foreground_mask(x) | foreground_mask(rec.detach())
            err = (rec - x).abs()
            per_pixel = (err + err.pow(2)).mean(dim=1)
            weight = area_balanced_weights(mask) if object_balance else mask.float()
            recon = recon + object_weight * (per_pixel * weight).sum() / weight.sum().clamp(min=1)
        reg = (0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean() if latents is None
               else rec.new_zeros(()))
        return {"loss": recon + kl_weight * reg, "recon": recon, "reg": reg, "rec": rec}

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
