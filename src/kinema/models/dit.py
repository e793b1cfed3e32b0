"""Diffusion transformer over spacetime patches of video latents.

Latents [B, C, t, h, w] are cut into 1x2x2 patches, one token each, laid out frame by frame.
Each block: self-attention over all tokens with 3D rotary positions (t, h, w), then
cross-attention to the text tokens, then an MLP. Queries and keys are RMS-normalised.
Conditioning is adaLN-Zero, per token: every latent frame carries its own timestep (frames given
by the user are clean, t=0), so the timestep embedding is [B, t, D] and is broadcast to the tokens
of its frame; a pooled text embedding is added to it. The final layer is zero-initialised, so the
untrained model predicts 0. The output is the velocity (noise - x0).

Rotary positions come from the actual grid, so any duration, size and aspect ratio works; the head
dimension is split across the three axes and the tables are cached per grid shape. They are
relative; `frame_position` (off by default) also adds where each token sits in the frame to the
tokens, and `cross_position` (off by default) to every block's cross-attention queries.
`text_refiner` (0 by default) adds self-attention layers over the projected text tokens.

Inference fast path (CPU, float32, autograd off): the same arithmetic on the same parameters, with
the linear layers and attention matmuls run by oneDNN on a CPU with AVX-512
(`torch.ops.mkldnn._linear_pointwise`, which uses its AVX-512 kernels where the default BLAS may
not, with the tanh-GELU fused into the first MLP matmul) and by torch's own (MKL) on other CPUs
(`KINEMA_DIT_MATMULS` = onednn | torch overrides), the attention scale and q-norm weight folded into the keys, and everything that
depends only on the text (its projection, pooled embedding, and every block's cross-attention keys
and values with the output projection folded in) computed once and reused while the same text
tensors are passed again (e.g. across sampling steps). Outputs equal the reference path to float
rounding; `KINEMA_DIT_FAST=0` in the environment (or `kinema.models.dit.FAST_INFERENCE = False`)
turns it off. Training (autograd on), other devices and dtypes use the reference path. Under CPU
autocast to bfloat16 (the pipeline's `denoise_precision`) the fast path runs its matmuls and
attention in bfloat16 on bf16 copies of the weights, and keeps the residual stream, norms, rotary
and modulation in float32: about half the time on a CPU with AMX (two thirds to three quarters
with AVX512-BF16), within 1% of float32.
"""

from __future__ import annotations

import math
import os
import platform
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..cpu_features import cpu_has_avx512, cpu_has_native_bf16
from .vae import ConfigError, check_config_keys


@dataclass
class DiTConfig:
    in_channels: int = 8
    hidden_size: int = 256
    depth: int = 6
    num_heads: int = 4
    mlp_ratio: float = 4.0
    text_dim: int = 384
    patch_size: tuple[int, int, int] = (1, 2, 2)
    qk_norm: bool = True
    rope_theta: float = 10000.0
    frame_position: bool = False  # add where each token sits in the frame (FramePosition)
    cross_position: bool = False  # also give every block's cross-attention queries that place (DiTBlock.cross_pos)
    text_refiner: int = 0  # self-attention layers over the projected text tokens (TextRefinerLayer)
    layout_channels: int = 0  # scene-layout channels added to the tokens (kinema.layout); 0 = none

    def __post_init__(self) -> None:
        if not (isinstance(self.text_refiner, int) and self.text_refiner >= 0):
            raise ConfigError(f"text_refiner must be a whole number of layers >= 0, got {self.text_refiner!r}")
        if not (isinstance(self.layout_channels, int) and self.layout_channels >= 0):
            raise ConfigError(f"layout_channels must be a whole number >= 0, got {self.layout_channels!r}")
        self.patch_size = tuple(int(p) for p in self.patch_size)
        if len(self.patch_size) != 3 or any(p < 1 for p in self.patch_size):
            raise ConfigError(f"patch_size must be three positive integers, got {self.patch_size}")
        if self.hidden_size % self.num_heads != 0:
            raise ConfigError(
                f"hidden_size={self.hidden_size} must be divisible by num_heads={self.num_heads}"
            )
        if (self.hidden_size // self.num_heads) % 2 != 0 or self.hidden_size // self.num_heads < 6:
            raise ConfigError(
                f"the head dimension hidden_size/num_heads={self.hidden_size // self.num_heads} "
                "must be even and at least 6 (it is split across the t, h, w rotary axes)"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["patch_size"] = list(self.patch_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DiTConfig":
        check_config_keys(cls, d)
        return cls(**d)


# ----- embeddings -------------------------------------------------------------------------------


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of t in [0, 1] (scaled by 1000), any leading shape -> [..., dim]."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = (t.float() * 1000.0)[..., None] * freqs
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden_size: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(
            nn.Linear(freq_dim, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size)
        )

    def forward(self, t: Tensor) -> Tensor:
        emb = timestep_embedding(t, self.freq_dim).to(self.mlp[0].weight.dtype)
        return self.mlp(emb)


FRAME_FREQS = 6  # Fourier frequencies per axis of the frame-position features


def frame_features(h: int, w: int, num_freqs: int = FRAME_FREQS, device=None) -> Tensor:
    """[h*w, 4*num_freqs]: sin and cos of pi * 2^k * (x, y) for each token centre, x and y in (0, 1)
    as fractions of the frame, row-major. A few hundred values, so computed each call rather than
    cached like the rotary tables."""
    ys = (torch.arange(h, dtype=torch.float64, device=device) + 0.5) / h
    xs = (torch.arange(w, dtype=torch.float64, device=device) + 0.5) / w
    freqs = math.pi * 2.0 ** torch.arange(num_freqs, dtype=torch.float64, device=device)
    ay = (ys[:, None, None] * freqs).expand(h, w, -1)
    ax = (xs[None, :, None] * freqs).expand(h, w, -1)
    return torch.cat([ax.sin(), ax.cos(), ay.sin(), ay.cos()], dim=-1).reshape(h * w, -1).float()


class FramePosition(nn.Module):
    """Where a token sits in the frame, as fractions of the frame's width and height (token centres,
    so the same for every resolution and aspect ratio), as Fourier features through a linear layer
    added to the tokens.

    Rotary positions are relative: at pure noise every token looks alike to them, so a model with
    rotary positions alone cannot put "the red circle" on the left half of the frame for "left of"
    until the noise itself has drawn a layout, nor tell where the frame ends. The layer starts at
    zero, so weights trained without it give exactly the same outputs until it is trained.
    """

    def __init__(self, hidden_size: int, num_freqs: int = FRAME_FREQS):
        super().__init__()
        self.num_freqs = num_freqs
        self.proj = nn.Linear(4 * num_freqs, hidden_size)

    def features(self, h: int, w: int, device=None) -> Tensor:
        return frame_features(h, w, self.num_freqs, device)


def zero_start_keys(model: "VideoDiT") -> set[str]:
    """State-dict keys of the optional layers that start as a no-op (`frame_position`,
    `cross_position`, `text_refiner`, `layout_channels`): what weights trained without them lack. Loaded into a model
    with them, those weights give the same outputs."""
    return {k for k in model.state_dict()
            if k.startswith("frame_pos.") or ".cross_pos." in k or k.startswith("text_refiner.")
            or k.startswith("layout_embedder.")}


def grow_layout_channels(model: "VideoDiT", channels: int) -> None:
    """Give `model`'s layout layer `channels` input channels, the new ones after the old with zero
    weights (as `kinema.layout` appends an outline after the base channels), so that its outputs
    stay the same whatever the new channels hold, until training teaches it to read them."""
    cfg = model.config
    if model.layout_embedder is None or channels < cfg.layout_channels:
        raise ConfigError(f"cannot grow a layout layer of {cfg.layout_channels} channels to {channels}")
    if channels == cfg.layout_channels:
        return
    old = model.layout_embedder
    per_channel = old.in_features // cfg.layout_channels  # patchify puts the channel outermost
    grown = nn.Linear(channels * per_channel, old.out_features).to(old.weight.device, old.weight.dtype)
    with torch.no_grad():
        grown.weight.zero_()
        grown.weight[:, :old.in_features] = old.weight
        grown.bias.copy_(old.bias)
    model.layout_embedder = grown
    cfg.layout_channels = channels


def rope_axis_dims(head_dim: int) -> tuple[int, int, int]:
    """How the head dimension is split across (t, h, w); each part even."""
    hw = 2 * (head_dim // 6)
    return head_dim - 2 * hw, hw, hw


class Rotary3D(nn.Module):
    """3D rotary position tables for a t x h x w token grid, cached per grid shape.

    Returns (cos, sin) [N, head_dim/2] and the same angles as unit complex numbers (cis), which is
    what `apply_rotary` multiplies by.
    """

    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        self.dims = rope_axis_dims(head_dim)
        self.theta = theta
        self._cache: dict[tuple, tuple[Tensor, Tensor, Tensor]] = {}

    def _axis_angles(self, n: int, dim: int, device) -> Tensor:
        inv = 1.0 / self.theta ** (torch.arange(0, dim, 2, dtype=torch.float64, device=device) / dim)
        pos = torch.arange(n, dtype=torch.float64, device=device)
        return torch.outer(pos, inv)  # [n, dim/2]

    def tables(self, t: int, h: int, w: int, device=None) -> tuple[Tensor, Tensor, Tensor]:
        device = torch.device(device or "cpu")
        key = (t, h, w, str(device))
        if key not in self._cache:
            dt, dh, dw = self.dims
            at = self._axis_angles(t, dt, device)[:, None, None, :].expand(t, h, w, -1)
            ah = self._axis_angles(h, dh, device)[None, :, None, :].expand(t, h, w, -1)
            aw = self._axis_angles(w, dw, device)[None, None, :, :].expand(t, h, w, -1)
            angles = torch.cat([at, ah, aw], dim=-1).reshape(t * h * w, -1)
            if len(self._cache) >= 64:
                self._cache.clear()
            cis = torch.polar(torch.ones_like(angles), angles).to(torch.complex64)
            self._cache[key] = (angles.cos().float(), angles.sin().float(), cis)
        return self._cache[key]

    def forward(self, t: int, h: int, w: int, device=None) -> Tensor:
        return self.tables(t, h, w, device)[2]


def apply_rotary(x: Tensor, cis: Tensor) -> Tensor:
    """Rotate consecutive pairs of x [..., head_dim] by the complex table cis [..., head_dim/2]
    (broadcast against x's leading dimensions, e.g. [N, 1, head_dim/2] for x [B, N, H, head_dim])."""
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * cis).flatten(-2).to(x.dtype)


# ----- blocks -------------------------------------------------------------------------------------


def rms_norm(x: Tensor, eps: float = 1e-6) -> Tensor:
    """x / rms(x) over the last dimension (one fused reduction; F.rms_norm is slower on CPU)."""
    rms = torch.linalg.vector_norm(x.float(), dim=-1, keepdim=True) * x.shape[-1] ** -0.5
    return (x.float() / (rms + eps)).to(x.dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return rms_norm(x, self.eps) * self.weight


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """q [B, N, H, d], k and v [B, M, H, d] -> [B, N, H*d]; mask [B, M] bool (True = attend)."""
    B, N, H, d = q.shape
    attn_mask = None if mask is None else mask[:, None, None, :]
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=attn_mask
    )
    return out.transpose(1, 2).reshape(B, N, H * d)


def attendable(mask: Tensor) -> Tensor:
    """A text mask [B, L] (True = attend) with position 0 opened for a sample that has no text, so
    its attention has somewhere to go instead of giving NaN; callers zero such a sample's
    cross-attention result."""
    safe = mask.clone()
    safe[:, 0] |= ~mask.any(dim=1)
    return safe


def attention_with_probs(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """`attention` written out, for training losses on where attention goes: (output [B, N, H*d],
    probabilities [B, H, N, M])."""
    B, N, H, d = q.shape
    scores = torch.matmul(q.transpose(1, 2), k.transpose(1, 2).transpose(-1, -2)) * d ** -0.5
    probs = scores.float().masked_fill(~mask[:, None, None, :], float("-inf")).softmax(-1)
    out = torch.matmul(probs.to(v.dtype), v.transpose(1, 2))
    return out.transpose(1, 2).reshape(B, N, H * d), probs


class TextRefinerLayer(nn.Module):
    """A pre-norm transformer layer over the projected text tokens: self-attention (respecting the
    text mask) and an MLP, each a residual branch whose output layer starts at zero.

    A frozen encoder's state at "red" in "a red circle left of a blue square" says little, linearly,
    about whether red is the one on the left (the subject) or the one it is compared with; a layer
    that lets each text token look at the others can make that role explicit before the video
    tokens query it.
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, ctx: Tensor, mask: Tensor) -> Tensor:
        B, L, D = ctx.shape
        q, k, v = self.qkv(self.norm1(ctx)).view(B, L, 3, self.num_heads, D // self.num_heads).unbind(2)
        ctx = ctx + self.proj(attention(q, k, v, attendable(mask)))
        return ctx + self.mlp(self.norm2(ctx))


class SelfAttention(nn.Module):
    """Fused qkv, RMS-normalised q and k, 3D rotary positions, scaled_dot_product_attention."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = RMSNorm(self.head_dim) if qk_norm else None
        self.k_norm = RMSNorm(self.head_dim) if qk_norm else None
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, rope: Tensor) -> Tensor:
        B, N, D = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.num_heads, self.head_dim)
        qk, v = qkv[:, :, :2], qkv[:, :, 2]  # q and k normalised and rotated together
        if self.q_norm is not None:
            weight = torch.stack([self.q_norm.weight, self.k_norm.weight])[:, None, :]  # [2, 1, d]
            qk = rms_norm(qk, self.q_norm.eps) * weight
        qk = apply_rotary(qk, rope[:, None, None, :])  # rope [N, d/2] -> broadcast over (2, H)
        q, k = qk.unbind(2)
        return self.proj(attention(q, k, v))


class CrossAttention(nn.Module):
    """Attention from video tokens to (projected) text tokens, respecting the text mask.

    A sample whose text mask is all False gets a zero output instead of NaN.
    """

    def __init__(self, dim: int, num_heads: int, qk_norm: bool):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.q_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, ctx: Tensor, mask: Tensor, record: list[Tensor] | None = None) -> Tensor:
        """`record`, when a list, gets this call's attention probabilities [B, heads, N, L]."""
        B, N, D = x.shape
        L = ctx.shape[1]
        q = self.q_norm(self.q(x).view(B, N, self.num_heads, self.head_dim))
        k, v = self.kv(ctx).view(B, L, 2, self.num_heads, self.head_dim).unbind(2)
        k = self.k_norm(k)
        has_text = mask.any(dim=1)  # [B]
        safe = attendable(mask)  # the result of a sample without text is zeroed below
        if record is None:
            out = attention(q, k, v, safe)
        else:
            out, probs = attention_with_probs(q, k, v, safe)
            record.append(probs)
        out = out * has_text.to(q.dtype)[:, None, None]
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return torch.addcmul(shift, x, 1 + scale)


# ----- inference fast path (oneDNN matmuls, cached text) ------------------------------------------

FAST_INFERENCE = os.environ.get("KINEMA_DIT_FAST", "1").strip().lower() not in ("0", "false", "no", "off")
# Which library runs the fast path's matmuls: "onednn" (torch.ops.mkldnn._linear_pointwise, GELU
# fused), "torch" (F.linear, i.e. MKL on x86), or "auto": oneDNN on a CPU with AVX-512, where it
# was measured to beat MKL, and torch's elsewhere (on an AVX2-only EPYC oneDNN's fused GELU and
# small matmuls were the slower: benchmarks/results/cpu_vs_diffusers_avx2_epyc_before.txt).
MATMULS = os.environ.get("KINEMA_DIT_MATMULS", "auto").strip().lower()
_ONEDNN_OK: bool | None = None
# tokens a sample from which self-attention runs through scaled_dot_product_attention instead of
# one matmul pair per head (benchmarks/attention_crossover.py measured the crossover): 1,024 with
# oneDNN's float32 matmuls on AVX-512; with bf16 matmuls, or torch's float32 ones on an AVX2 CPU,
# the fused kernel was the faster at every size measured, so it is always used
SDPA_MIN_TOKENS = 1024
SDPA_MIN_TOKENS_BF16 = 0
SDPA_MIN_TOKENS_TORCH_MATMULS = 0


def _onednn_available() -> bool:
    """Whether torch.ops.mkldnn._linear_pointwise exists and computes a linear layer (probed once,
    on deterministic inputs so the global random stream is untouched). x86-64 only: that is where
    it was measured to beat the default BLAS."""
    global _ONEDNN_OK
    if _ONEDNN_OK is None:
        ok = False
        try:
            if (platform.machine().lower() in ("x86_64", "amd64") and torch.backends.mkldnn.is_available()
                    and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
                x = torch.linspace(-1.0, 1.0, 40).reshape(5, 8)
                w = torch.linspace(-0.5, 0.7, 48).reshape(6, 8)
                b = torch.linspace(0.1, 0.6, 6)
                # autocast off: under it F.linear would answer in bfloat16 and fail the comparison
                with torch.no_grad(), torch.autocast("cpu", enabled=False):
                    y = torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
                    g = torch.ops.mkldnn._linear_pointwise(x, w, b, "gelu", [], "tanh")
                    ok = bool(torch.allclose(y, F.linear(x, w, b), atol=1e-5)) and bool(
                        torch.allclose(g, F.gelu(F.linear(x, w, b), approximate="tanh"), atol=1e-5)
                    )
        except Exception:  # an old or unusual build: the reference path is used
            ok = False
        _ONEDNN_OK = ok
    return _ONEDNN_OK


def _onednn_matmuls() -> bool:
    """Whether the fast path's matmuls go to oneDNN (`MATMULS`, "auto" by the CPU's vector width)."""
    if MATMULS not in ("auto", "onednn", "torch"):
        raise ValueError(f"KINEMA_DIT_MATMULS must be auto, onednn or torch, got {MATMULS!r}")
    if MATMULS == "torch":
        return False
    if MATMULS == "auto" and not cpu_has_avx512():
        return False
    return _onednn_available()


def _sdpa_min_tokens(dtype: torch.dtype) -> int:
    if dtype == torch.bfloat16:
        return SDPA_MIN_TOKENS_BF16
    return SDPA_MIN_TOKENS if _onednn_matmuls() else SDPA_MIN_TOKENS_TORCH_MATMULS


def _cpu_autocast_bf16() -> bool:
    """Whether CPU autocast to bfloat16 is on here (the pipeline's `denoise_precision` "bf16")."""
    return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


_GELU_K = 2.0 * math.sqrt(2.0 / math.pi)


def _gelu_tanh_(y: Tensor) -> Tensor:
    """F.gelu(y, approximate="tanh"), overwriting y: 0.5 y (1 + tanh(z)) = y sigmoid(2z), the
    same function to float rounding, and on an AVX2 CPU about 1.7x faster than torch's tanh-GELU
    kernel (sigmoid's vector code is much faster than tanh's there)."""
    s = y * y
    s.mul_(0.044715 * _GELU_K).add_(_GELU_K).mul_(y)  # 2z = K (y + 0.044715 y^3)
    return y.mul_(s.sigmoid_())


def _lin(x: Tensor, weight: Tensor, bias: Tensor | None = None, gelu: bool = False) -> Tensor:
    """x @ weight.T + bias (then tanh-GELU), by oneDNN or torch (`MATMULS`); any leading shape."""
    if not _onednn_matmuls():
        y = F.linear(x, weight, bias)
        return _gelu_tanh_(y) if gelu else y
    if gelu:
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "tanh")
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class _MatmulWeights:
    """The parameters as the fast path's matmuls take them, in its matmul dtype: a float32
    parameter as it is; for bfloat16, a copy made once per parameter and kept on the model until
    the parameter changes (in place, by `_version`, or replaced)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype):
        self.dtype = dtype
        self._copies: dict[Any, tuple] = model.__dict__.setdefault("_matmul_weight_copies", {})

    def __call__(self, p: Tensor | None) -> Tensor | None:
        if p is None or p.dtype == self.dtype:
            return p
        stamp = (p._version, p.data_ptr())
        hit = self._copies.get(id(p))
        if hit is not None and hit[0] is p and hit[1] == stamp:
            return hit[2]
        w = p.detach().to(self.dtype)
        self._copies[id(p)] = (p, stamp, w)
        return w

    def stacked(self, layers: list[nn.Linear]) -> tuple[Tensor, Tensor]:
        """The layers' weights and biases concatenated along the output features, in the matmul
        dtype, so one matmul does the work of several that read the same input; made once and kept
        on the model until a parameter changes."""
        params = [p for layer in layers for p in (layer.weight, layer.bias)]
        stamp = tuple((p._version, p.data_ptr()) for p in params)
        key = ("stacked", self.dtype)
        hit = self._copies.get(key)
        if hit is not None and len(hit[0]) == len(params) and all(a is b for a, b in zip(hit[0], params)) \
                and hit[1] == stamp:
            return hit[2]
        weight = torch.cat([layer.weight.detach() for layer in layers]).to(self.dtype)
        bias = torch.cat([layer.bias.detach() for layer in layers]).to(self.dtype)
        self._copies[key] = (params, stamp, (weight, bias))
        return weight, bias

    def linear(self, x: Tensor, layer: nn.Linear, gelu: bool = False) -> Tensor:
        """layer(x) (then tanh-GELU) in the matmul dtype, which is also the result's."""
        return _lin(x.to(self.dtype), self(layer.weight), self(layer.bias), gelu)


def _self_attention_fast(attn: "SelfAttention", x: Tensor, cis: Tensor, W: _MatmulWeights) -> Tensor:
    """SelfAttention.forward for x [B, N, D] (cis [N, d/2] complex): RMS norm and rotary written
    head-major, the softmax scale folded into the q-norm weight, one oneDNN matmul pair per head.
    Matmuls, softmax and the result in W.dtype; the norm and rotary in float32."""
    B, N, D = x.shape
    H, d = attn.num_heads, attn.head_dim
    qkv = W.linear(x, attn.qkv).view(B, N, 3, H, d)
    qk = qkv[:, :, :2]  # in the matmul dtype; the float32 operands below promote it, no copy
    scale = d ** -0.5
    if attn.q_norm is not None:
        w = torch.stack([attn.q_norm.weight * scale, attn.k_norm.weight])[:, None, :]  # [2, 1, d]
        rms = torch.linalg.vector_norm(qk, dim=-1, keepdim=True, dtype=torch.float32)
        rms.mul_(d ** -0.5).add_(attn.q_norm.eps)
        qk = torch.div(qk, rms).mul_(w)
    else:
        w = torch.tensor([scale, 1.0], dtype=torch.float32, device=qk.device)[:, None, None]  # [2, 1, 1]
        qk = qk * w
    # rotate pairs (as apply_rotary) straight into [2, B, H, N, d] so each head's q and k are rows
    xc = torch.view_as_complex(qk.reshape(B, N, 2, H, d // 2, 2)).permute(2, 0, 3, 1, 4)
    rot = torch.empty((2, B, H, N, d // 2), dtype=xc.dtype, device=x.device)
    torch.mul(xc, cis, out=rot)
    q, k = torch.view_as_real(rot).view(2, B, H, N, d).to(W.dtype).unbind(0)
    if N >= _sdpa_min_tokens(W.dtype):
        # long sequences: the [N, N] score matrix of the loop below outgrows the caches; torch's
        # fused CPU attention works in tiles instead (q already carries the softmax scale)
        o = F.scaled_dot_product_attention(q, k, qkv[:, :, 2].transpose(1, 2), scale=1.0)
        return W.linear(o.transpose(1, 2).reshape(B, N, D), attn.proj)
    vt = qkv[:, :, 2].permute(0, 2, 3, 1).contiguous()  # [B, H, d, N]: weights of P @ V
    out = torch.empty((B, N, H, d), dtype=W.dtype, device=x.device)
    for b in range(B):
        for h in range(H):
            p = _lin(q[b, h], k[b, h]).softmax(dim=-1)  # [N, N], already scaled
            out[b, :, h] = _lin(p, vt[b, h])
    return W.linear(out.view(B, N, D), attn.proj)


def _cross_text_fast(cross: "CrossAttention", ctx: Tensor, mask: Tensor,
                     dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor, Tensor]:
    """What a CrossAttention needs from the text alone, per sample b (L text tokens, H heads):

    - keys [B, H*L, D]: block-diagonal, row h*L+l holds head h's normalised key of token l,
      times the q-norm weight and the softmax scale, so scores = q_hat @ keys.T;
    - bias [B, H*L]: 0 where the token is attended, -inf where masked (a sample without text keeps
      token 0, as the reference does, and gets zero values below);
    - values [B, D, H*L]: column h*L+l is proj.weight[:, head h] @ v_{h,l} (the output projection
      folded in), zero for a sample without text, so out = softmax(scores) @ values.T + proj.bias.

    All three in `dtype`, the fast path's matmul dtype.
    """
    B, L, D = ctx.shape
    H, d = cross.num_heads, cross.head_dim
    k, v = _lin(ctx, cross.kv.weight, cross.kv.bias).view(B, L, 2, H, d).unbind(2)
    k = cross.k_norm(k)  # [B, L, H, d]
    if isinstance(cross.q_norm, RMSNorm):
        k = k * cross.q_norm.weight
    k = (k * d ** -0.5).permute(0, 2, 1, 3)  # [B, H, L, d]
    keys = ctx.new_zeros((B, H, L, H, d))
    for h in range(H):
        keys[:, h, :, h] = k[:, h]
    keys = keys.reshape(B, H * L, D)
    has_text = mask.any(dim=1)
    safe = attendable(mask)
    bias = torch.zeros((B, H, L), dtype=ctx.dtype, device=ctx.device)
    bias.masked_fill_(~safe[:, None, :], float("-inf"))
    wp = cross.proj.weight.view(D, H, d)  # out features, head, head dim
    values = torch.einsum("blhe,dhe->bdhl", v, wp).reshape(B, D, H * L)
    values = values * has_text.to(ctx.dtype)[:, None, None]
    # computed in float32 once per text, then held in the matmul dtype
    return keys.to(dtype), bias.reshape(B, H * L).to(dtype), values.contiguous().to(dtype)


def _cross_attention_fast(cross: "CrossAttention", x: Tensor, text: tuple[Tensor, Tensor, Tensor],
                          W: _MatmulWeights) -> Tensor:
    """CrossAttention.forward for x [B, N, D] from the per-text tensors of _cross_text_fast; the
    result in W.dtype."""
    keys, bias, values = text
    B, N, D = x.shape
    H, d = cross.num_heads, cross.head_dim
    q = W.linear(x, cross.q)
    if isinstance(cross.q_norm, RMSNorm):
        qh = q.view(B, N, H, d)
        rms = torch.linalg.vector_norm(qh, dim=-1, keepdim=True).mul_(d ** -0.5).add_(cross.q_norm.eps)
        q = qh.div_(rms).view(B, N, D)
    L = keys.shape[1] // H
    # every sample at once: [B, N, D] @ [B, D, H*L], then the weights @ [B, H*L, D]
    s = torch.baddbmm(bias[:, None, :], q, keys.transpose(1, 2)).view(B, N, H, L).softmax(dim=-1)
    return torch.baddbmm(W(cross.proj.bias), s.view(B, N, H * L), values.transpose(1, 2))


def _modulate_into(x: Tensor, shift: Tensor, scale_plus_one: Tensor, dtype: torch.dtype) -> Tensor:
    """modulate(x, shift, scale) for `scale_plus_one` = 1 + scale, computed in float32 and written
    straight in `dtype` (the next matmul's input): one pass instead of modulate and a copy."""
    out = torch.empty(x.shape, dtype=dtype, device=x.device)
    return torch.addcmul(shift, x, scale_plus_one, out=out)


def _all_modulations(model: "VideoDiT", c: Tensor,
                     W: _MatmulWeights) -> tuple[list[tuple[Tensor, ...]], tuple[Tensor, Tensor]]:
    """Every block's adaLN modulation and the final layer's from one matmul (they all read
    silu(c)), float32, each [B, t, 1, D], with 1 already added to the scales: per block (shift_sa,
    1 + scale_sa, gate_sa, shift_mlp, 1 + scale_mlp, gate_mlp), then the final (shift, 1 + scale)."""
    layers = [block.adaLN_modulation[1] for block in model.blocks] + [model.final_layer.adaLN_modulation[1]]
    weight, bias = W.stacked(layers)
    B, T, D = c.shape
    mod = _lin(F.silu(c).to(W.dtype), weight, bias).float()
    n = len(model.blocks)
    per_block = mod[..., :n * 6 * D].view(B, T, n, 6, 1, D)
    per_block[:, :, :, 1].add_(1.0)
    per_block[:, :, :, 4].add_(1.0)
    final = mod[..., n * 6 * D:].view(B, T, 2, 1, D)
    final[:, :, 1].add_(1.0)
    blocks = [tuple(per_block[:, :, i].unbind(2)) for i in range(n)]
    return blocks, tuple(final.unbind(2))


def _block_fast(block: "DiTBlock", x: Tensor, mod: tuple[Tensor, ...], cis: Tensor,
                text: tuple[Tensor, Tensor, Tensor], place: Tensor | None, W: _MatmulWeights) -> Tensor:
    """DiTBlock.forward on the fast path (same operations, oneDNN matmuls, fused MLP GELU), with
    the block's modulation from _all_modulations. The residual stream x, the norms and the
    modulation stay float32 whatever W.dtype is."""
    B, T, S, D = x.shape
    shift_sa, scale1_sa, gate_sa, shift_mlp, scale1_mlp, gate_mlp = mod
    h = _modulate_into(block.norm1(x), shift_sa, scale1_sa, W.dtype).view(B, T * S, D)
    x = torch.addcmul(x, gate_sa, _self_attention_fast(block.attn, h, cis, W).view(B, T, S, D))
    h = block.norm_cross(x)
    if block.cross_pos is not None:
        h = h + W.linear(place, block.cross_pos)
    x = x + _cross_attention_fast(block.cross, h.reshape(B, T * S, D), text, W).view(B, T, S, D)
    h = _modulate_into(block.norm2(x), shift_mlp, scale1_mlp, W.dtype)
    h = W.linear(W.linear(h, block.mlp.fc1, gelu=True), block.mlp.fc2)
    return torch.addcmul(x, gate_mlp, h)


class DiTBlock(nn.Module):
    """adaLN-Zero block: self-attention, cross-attention to text, MLP.

    Tokens are viewed as [B, t, hw, D] so the per-frame modulation [B, t, 1, D] broadcasts.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qk_norm: bool, cross_position: bool = False):
        super().__init__()
        # where the token sits in the frame, added to the cross-attention's input after its norm
        # (so it reaches the queries whatever the token's content); zero at the start
        self.cross_pos = nn.Linear(4 * FRAME_FREQS, dim) if cross_position else None
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(dim, num_heads, qk_norm)
        self.norm_cross = nn.LayerNorm(dim, elementwise_affine=True, eps=1e-6)
        self.cross = CrossAttention(dim, num_heads, qk_norm)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(
        self, x: Tensor, c: Tensor, rope: Tensor, ctx: Tensor, mask: Tensor, record: list[Tensor] | None = None,
        place: Tensor | None = None,
    ) -> Tensor:
        # x [B, t, hw, D]; c [B, t, D]; place [hw, 4 * FRAME_FREQS] (frame_features), with cross_pos
        B, T, S, D = x.shape
        mod = self.adaLN_modulation(c)[:, :, None, :].chunk(6, dim=-1)
        shift_sa, scale_sa, gate_sa, shift_mlp, scale_mlp, gate_mlp = mod
        h = modulate(self.norm1(x), shift_sa, scale_sa).reshape(B, T * S, D)
        x = torch.addcmul(x, gate_sa, self.attn(h, rope).view(B, T, S, D))
        h = self.norm_cross(x)
        if self.cross_pos is not None:
            h = h + self.cross_pos(place)
        x = x + self.cross(h.reshape(B, T * S, D), ctx, mask, record).view(B, T, S, D)
        x = torch.addcmul(x, gate_mlp, self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp)))
        return x


class FinalLayer(nn.Module):
    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, out_dim)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(c)[:, :, None, :].chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


# ----- the transformer --------------------------------------------------------------------------


class VideoDiT(nn.Module):
    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = config
        cfg = config
        D = cfg.hidden_size
        pt, ph, pw = cfg.patch_size
        self.patch_dim = cfg.in_channels * pt * ph * pw
        self.x_embedder = nn.Linear(self.patch_dim, D)
        # the scene layout, patched like the latents, added to the patch embeddings
        self.layout_embedder = nn.Linear(cfg.layout_channels * pt * ph * pw, D) if cfg.layout_channels else None
        self.t_embedder = TimestepEmbedder(D)
        self.text_proj = nn.Sequential(
            nn.Linear(cfg.text_dim, D), nn.GELU(approximate="tanh"), nn.Linear(D, D)
        )
        self.text_pool = nn.Sequential(nn.Linear(cfg.text_dim, D), nn.SiLU(), nn.Linear(D, D))
        self.text_refiner = nn.ModuleList([TextRefinerLayer(D, cfg.num_heads) for _ in range(cfg.text_refiner)])
        self.rope = Rotary3D(cfg.head_dim, cfg.rope_theta)
        self.frame_pos = FramePosition(D) if cfg.frame_position else None
        self.blocks = nn.ModuleList(
            [DiTBlock(D, cfg.num_heads, cfg.mlp_ratio, cfg.qk_norm, cfg.cross_position) for _ in range(cfg.depth)]
        )
        self.final_layer = FinalLayer(D, self.patch_dim)
        self._text_cache = None  # inference fast path: (text_states, text_mask, key, tensors)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        def _basic(m):
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

        self.apply(_basic)
        for mlp in (self.t_embedder.mlp, self.text_pool):
            nn.init.normal_(mlp[0].weight, std=0.02)
            nn.init.normal_(mlp[2].weight, std=0.02)
        for block in self.blocks:  # adaLN-Zero: every residual branch starts closed
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
            nn.init.zeros_(block.cross.proj.weight)
            nn.init.zeros_(block.cross.proj.bias)
            if block.cross_pos is not None:
                nn.init.zeros_(block.cross_pos.weight)
                nn.init.zeros_(block.cross_pos.bias)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)
        if self.frame_pos is not None:
            nn.init.zeros_(self.frame_pos.proj.weight)
            nn.init.zeros_(self.frame_pos.proj.bias)
        if self.layout_embedder is not None:
            nn.init.zeros_(self.layout_embedder.weight)
            nn.init.zeros_(self.layout_embedder.bias)
        for layer in self.text_refiner:  # each residual branch starts closed
            for out in (layer.proj, layer.mlp.fc2):
                nn.init.zeros_(out.weight)
                nn.init.zeros_(out.bias)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def rotary_tables(self, t: int, h: int, w: int, device=None) -> tuple[Tensor, Tensor]:
        """(cos, sin) [t*h*w, head_dim/2] for a grid of t x h x w tokens (after patching)."""
        cos, sin, _ = self.rope.tables(t, h, w, device)
        return cos, sin

    # ----- patches ----------------------------------------------------------------------------
    def _check(self, x: Tensor, timesteps: Tensor, text_states: Tensor, text_mask: Tensor,
               layout: Tensor | None = None) -> None:
        cfg = self.config
        if x.ndim != 5 or x.shape[1] != cfg.in_channels:
            raise ConfigError(f"latents must be [B, {cfg.in_channels}, t, h, w], got {tuple(x.shape)}")
        B, _, T, H, W = x.shape
        pt, ph, pw = cfg.patch_size
        if T % pt or H % ph or W % pw:
            raise ConfigError(
                f"latent grid t={T}, h={H}, w={W} must be divisible by the patch size {cfg.patch_size}"
            )
        if tuple(timesteps.shape) != (B, T):
            raise ConfigError(f"timesteps must be [B, t] = [{B}, {T}], got {tuple(timesteps.shape)}")
        if text_states.ndim != 3 or text_states.shape[0] != B or text_states.shape[2] != cfg.text_dim:
            raise ConfigError(
                f"text_states must be [{B}, L, {cfg.text_dim}], got {tuple(text_states.shape)}"
            )
        if tuple(text_mask.shape) != tuple(text_states.shape[:2]):
            raise ConfigError(
                f"text_mask must be [B, L] = {list(text_states.shape[:2])}, got {tuple(text_mask.shape)}"
            )
        if layout is not None:
            if not cfg.layout_channels:
                raise ConfigError("a layout was given to a transformer without layout channels (layout_channels 0)")
            want = (B, cfg.layout_channels, T, H, W)
            if tuple(layout.shape) != want:
                raise ConfigError(f"layout must be [B, K, t, h, w] = {list(want)}, got {tuple(layout.shape)}")

    def patchify(self, x: Tensor) -> Tensor:
        """[B, C, t, h, w] -> [B, t', h'*w', C*pt*ph*pw] (tokens grouped per patch frame)."""
        B, C, T, H, W = x.shape
        pt, ph, pw = self.config.patch_size
        x = x.reshape(B, C, T // pt, pt, H // ph, ph, W // pw, pw)
        x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)  # B, t, h, w, C, pt, ph, pw
        return x.reshape(B, T // pt, (H // ph) * (W // pw), C * pt * ph * pw)

    def _add_layout(self, tokens: Tensor, layout: Tensor | None) -> Tensor:
        if self.layout_embedder is None:
            return tokens
        if layout is None:  # the same as all zeros, as the model was trained without a layout
            return tokens + self.layout_embedder.bias.to(tokens.dtype)
        return tokens + self.layout_embedder(self.patchify(layout.to(tokens.dtype)))

    def unpatchify(self, x: Tensor, T: int, H: int, W: int) -> Tensor:
        B = x.shape[0]
        C = self.config.in_channels
        pt, ph, pw = self.config.patch_size
        x = x.reshape(B, T // pt, H // ph, W // pw, C, pt, ph, pw)
        x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)
        return x.reshape(B, C, T, H, W)

    # ----- forward ------------------------------------------------------------------------------
    def forward(self, x: Tensor, timesteps: Tensor, text_states: Tensor, text_mask: Tensor,
                cross_attention: list[Tensor] | None = None, layout: Tensor | None = None) -> Tensor:
        """Predicted velocity (noise - x0), [B, C, t, h, w]; one timestep per latent frame.

        `layout` [B, layout_channels, t, h, w] (`kinema.layout`), when given, says where the
        scene's objects are; all zeros or None means no layout.

        `cross_attention`, when a list, gets each block's cross-attention probabilities
        [B, heads, tokens, text length] (tokens in patch order, time major), for training losses."""
        self._check(x, timesteps, text_states, text_mask, layout)
        if cross_attention is None and self._fast_path_ok(x):
            return self._forward_fast(x, timesteps, text_states, text_mask, layout)
        B, _, T, H, W = x.shape
        pt, ph, pw = self.config.patch_size
        Tp, Hp, Wp = T // pt, H // ph, W // pw
        dtype = self.x_embedder.weight.dtype
        text_mask = text_mask.to(device=x.device, dtype=torch.bool)
        text_states = text_states.to(dtype)

        tokens = self._add_layout(self.x_embedder(self.patchify(x.to(dtype))), layout)  # [B, Tp, Hp*Wp, D]
        place = self._frame_place(Hp, Wp, x.device, dtype)
        if self.frame_pos is not None:
            tokens = tokens + self.frame_pos.proj(place)

        # per-frame conditioning: the timestep of each patch frame (first latent frame of the patch)
        c = self.t_embedder(timesteps[:, ::pt])  # [B, Tp, D]
        m = text_mask.to(dtype)[..., None]
        pooled = (text_states * m).sum(1) / m.sum(1).clamp(min=1.0)
        c = c + self.text_pool(pooled)[:, None, :]
        ctx = self.refine_text(self.text_proj(text_states), text_mask)

        rope = self.rope(Tp, Hp, Wp, x.device)
        for block in self.blocks:
            tokens = block(tokens, c, rope, ctx, text_mask, cross_attention, place)
        out = self.final_layer(tokens, c)
        return self.unpatchify(out, T, H, W).to(x.dtype)

    # ----- inference fast path ------------------------------------------------------------------
    def _fast_path_ok(self, x: Tensor) -> bool:
        return (
            not torch.compiler.is_compiling()  # torch.compile traces the reference path
            and FAST_INFERENCE
            and not torch.is_grad_enabled()
            and x.device.type == "cpu"
            and self.x_embedder.weight.dtype == torch.float32
            and self.x_embedder.weight.device.type == "cpu"
            # oneDNN has no bf16 matmul where the CPU lacks native bf16 (it refuses to build one);
            # autocast's reference path still runs there, emulated
            and (not _cpu_autocast_bf16() or cpu_has_native_bf16())
        )

    def _frame_place(self, hp: int, wp: int, device, dtype) -> Tensor | None:
        """The frame-position features [hp*wp, 4 * FRAME_FREQS] once per forward, for the
        `frame_position` layer and every block's `cross_position` layer (None when neither is on)."""
        if self.frame_pos is None and not self.config.cross_position:
            return None
        return frame_features(hp, wp, device=device).to(dtype)

    def refine_text(self, ctx: Tensor, mask: Tensor) -> Tensor:
        """The projected text tokens [B, L, D] through the text refiner (unchanged without one)."""
        for layer in self.text_refiner:
            ctx = layer(ctx, mask)
        return ctx

    def _text_params(self) -> list[Tensor]:
        ps = [*self.text_proj.parameters(), *self.text_pool.parameters(), *self.text_refiner.parameters()]
        for block in self.blocks:
            ps += [*block.cross.kv.parameters(), *block.cross.k_norm.parameters(),
                   *block.cross.q_norm.parameters(), block.cross.proj.weight]
        return ps

    def _text_tensors(self, text_states: Tensor, text_mask: Tensor,
                      dtype: torch.dtype = torch.float32) -> tuple[Tensor, list]:
        """(pooled text embedding [B, D], per-block cross-attention tensors in `dtype`), cached
        while the same text tensors (same objects, not modified in place), the same weights and
        the same dtype come back."""
        try:
            key = (text_states._version, text_mask._version, dtype,
                   tuple((p.data_ptr(), p._version) for p in self._text_params()))
        except RuntimeError:  # inference-mode tensors have no version counter: do not cache
            key = None
        cached = self.__dict__.get("_text_cache")
        if (key is not None and cached is not None and cached[0] is text_states
                and cached[1] is text_mask and cached[2] == key):
            return cached[3]
        wdtype = self.x_embedder.weight.dtype
        mask = text_mask.to(device=text_states.device, dtype=torch.bool)
        states = text_states.to(wdtype)
        m = mask.to(wdtype)[..., None]
        pooled = (states * m).sum(1) / m.sum(1).clamp(min=1.0)
        pooled = self.text_pool(pooled)
        ctx = self.refine_text(self.text_proj(states), mask)
        value = (pooled, [_cross_text_fast(block.cross, ctx, mask, dtype) for block in self.blocks])
        # one entry, replaced atomically; holding the text tensors keeps their identity meaningful
        self._text_cache = (text_states, text_mask, key, value) if key is not None else None
        return value

    def _forward_fast(self, x: Tensor, timesteps: Tensor, text_states: Tensor, text_mask: Tensor,
                      layout: Tensor | None = None) -> Tensor:
        # under CPU autocast to bfloat16 the matmuls run in bfloat16 (AMX and AVX512-BF16 kernels);
        # the rest is float32 and written out here, so autocast is off inside
        low = _cpu_autocast_bf16()
        with torch.autocast("cpu", enabled=False):
            return self._forward_fast_in(x, timesteps, text_states, text_mask,
                                         torch.bfloat16 if low else torch.float32, layout)

    def _forward_fast_in(self, x: Tensor, timesteps: Tensor, text_states: Tensor, text_mask: Tensor,
                         matmul_dtype: torch.dtype, layout: Tensor | None = None) -> Tensor:
        B, _, T, H, W = x.shape
        pt, ph, pw = self.config.patch_size
        Tp, Hp, Wp = T // pt, H // ph, W // pw
        dtype = self.x_embedder.weight.dtype
        mw = _MatmulWeights(self, matmul_dtype)
        pooled, text = self._text_tensors(text_states, text_mask, matmul_dtype)
        tokens = mw.linear(self.patchify(x.to(dtype)), self.x_embedder).to(dtype)
        if self.layout_embedder is not None:  # no layout adds the bias alone, as in _add_layout
            embedded = (self.layout_embedder.bias if layout is None
                        else mw.linear(self.patchify(layout.to(dtype)), self.layout_embedder))
            tokens = tokens + embedded.to(dtype)
        place = self._frame_place(Hp, Wp, x.device, dtype)
        if self.frame_pos is not None:
            tokens = tokens + self.frame_pos.proj(place)
        c = self.t_embedder(timesteps[:, ::pt]) + pooled[:, None, :]  # [B, Tp, D]
        cis = self.rope(Tp, Hp, Wp, x.device)
        block_mods, (shift, scale1) = _all_modulations(self, c, mw)
        for block, block_text, mod in zip(self.blocks, text, block_mods):
            tokens = _block_fast(block, tokens, mod, cis, block_text, place, mw)
        fl = self.final_layer
        out = mw.linear(_modulate_into(fl.norm(tokens), shift, scale1, matmul_dtype), fl.linear)
        return self.unpatchify(out, T, H, W).to(x.dtype)

    # ----- cost model --------------------------------------------------------------------------
    def flops_per_forward(self, t: int, h: int, w: int, text_len: int, batch: int = 1) -> int:
        """Analytic matmul FLOPs (2 per multiply-add) of one forward on a t x h x w latent grid.

        Counts the linear layers, attention scores and weighted sums, for `batch` samples;
        ignores norms, activations and rotary (a few percent).
        """
        cfg = self.config
        D = cfg.hidden_size
        pt, ph, pw = cfg.patch_size
        Tp = t // pt
        N = Tp * (h // ph) * (w // pw)
        L = text_len
        Hd = int(D * cfg.mlp_ratio)
        f = 0
        f += 2 * N * self.patch_dim * D  # patch embedding
        f += 2 * N * cfg.layout_channels * pt * ph * pw * D  # layout embedding
        if cfg.frame_position:
            f += 2 * (h // ph) * (w // pw) * 4 * self.frame_pos.num_freqs * D  # once per frame grid
        f += 2 * Tp * (256 * D + D * D)  # timestep MLP (per frame)
        f += 2 * (cfg.text_dim * D + D * D)  # pooled text MLP
        f += 2 * L * (cfg.text_dim * D + D * D)  # text projection
        f += cfg.text_refiner * (2 * L * D * 3 * D + 2 * 2 * L * L * D + 2 * L * D * D + 2 * 2 * L * D * 4 * D)
        per_block = 0
        per_block += 2 * Tp * D * 6 * D  # adaLN modulation (per frame)
        per_block += 2 * N * D * 3 * D  # fused qkv
        per_block += 2 * 2 * N * N * D  # scores + weighted sum
        per_block += 2 * N * D * D  # attention out projection
        per_block += 2 * N * D * D  # cross q
        if cfg.cross_position:
            per_block += 2 * (h // ph) * (w // pw) * 4 * FRAME_FREQS * D  # once per frame grid
        per_block += 2 * L * D * 2 * D  # cross kv
        per_block += 2 * 2 * N * L * D  # cross scores + weighted sum
        per_block += 2 * N * D * D  # cross out projection
        per_block += 2 * 2 * N * D * Hd  # MLP
        f += cfg.depth * per_block
        f += 2 * Tp * D * 2 * D + 2 * N * D * self.patch_dim  # final layer
        return int(batch * f)
