"""`Pipeline`: the video autoencoder, the diffusion transformer and the text encoder together.

    pipe = Pipeline.from_pretrained()                 # the shipped default (weights/kinema-tiny)
    video = pipe.generate("a large red circle moves right on a navy background", seconds=2, seed=0)
    video.save("shot.mp4")

Every mode of DESIGN §2 is one sampler with per-frame timesteps: frames the user gives are encoded
to latents, held at t = 0 and never overwritten; the rest is generated. Work is done in windows
of at most `max_latent_frames` latent frames; longer clips grow by repeated extension, each new
window given the last `context_latent_frames` latent frames of what exists so far.

With a causal autoencoder a latent frame depends on the frames before it, and latent frame 0 of a
window encodes one frame alone while the others encode groups of 4. So context is always
re-encoded from pixels so that it is valid where it is placed:

- at the start of a window (extension forward, the first side of a connection): the last
  1+4(k-1) frames, encoded as a clip of their own -> k latents;
- at the end of a window (extension backward, the far side of a connection or a loop): the first
  4k frames, encoded behind a copy of their first frame -> the k group latents after it.

Frame counts (`num_frames`, or `seconds` x `fps`):

- text->video, still image, image->video, loop, edit: the length of the returned video
  (image->video: the image is frame 0; edit: at most the clip's length, by default all of it);
- extend / extend_backward: the number of new frames; the result is the clip followed (preceded)
  by them;
- connect: the length of the bridge; the result is video + bridge + end_video.

The latent grid wants 1+4k frames and sizes that are multiples of 16: requests are rounded up for
generation and the result is trimmed / resized back to exactly what was asked. Frames the user
gave appear in the result as given (resized to the requested size).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .allocator import keep_freed_memory
from .cpu_features import BF16_EMULATED, cpu_has_native_bf16
from .diffusion.flow import num_tokens_for, shift_for_tokens
from .diffusion.sampling import SAMPLERS, check_guidance_interval, edit_schedule, sample
from .errors import KinemaError
from .files import give_usual_permissions
from .models.loading import all_finite, skip_weight_init
from .video import Video, VideoError

__all__ = ["Pipeline", "load_pipeline", "DEFAULT_CONFIG", "parse_size"]

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "weights" / "kinema-tiny"
MODEL_INDEX = "model_index.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"

# Pipeline defaults; saved in model_index.json under "defaults".
DEFAULT_CONFIG: dict[str, Any] = {
    "model_name": "kinema",
    "fps": 12.0,
    "size": "128x128",
    "seconds": 2.0,
    "steps": 20,
    "guidance": 5.0,
    "guidance_interval": None,  # [lo, hi]: guide only the steps whose time t lies there (None: every step)
    "distilled_guidance": None,  # the guidance scale a distilled transformer learned (then guidance is 1)
    "sampler": "euler",
    "shift": None,  # a number, or None: shift_for_tokens() of each window's token count
    "base_tokens": 256,
    "base_shift": 1.0,
    "max_tokens": 4096,
    "max_shift": 3.0,
    "max_latent_frames": 7,  # one window: 7 latent = 25 pixel frames
    "context_latent_frames": 2,  # latent frames carried into the next window
    "strength": 0.6,
    "decode_chunk_size": None,  # latent frames per decoder chunk (None: all at once)
    "decode_precision": "auto",  # auto: bf16 on a CPU with native bf16 (3x faster decode), else fp32
    "denoise_precision": "auto",  # auto: the transformer's matmuls in bf16 on a CPU with native bf16, else fp32
    "max_frames": 1000,
    "layout": True,  # text->video with a scene planner and a layout transformer: plan the scene first
}

MIN_SIDE, MAX_SIDE = 32, 1024
MAX_PROMPT_CHARS = 1000
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}

MODES = ("t2v", "i2v", "extend", "extend_backward", "connect", "loop", "edit")
_MODE_ALIASES = {
    "text": "t2v", "text_to_video": "t2v", "t2i": "t2v", "still": "t2v",
    "image": "i2v", "image_to_video": "i2v", "animate": "i2v",
    "forward": "extend", "extend_forward": "extend",
    "backward": "extend_backward", "extend_back": "extend_backward",
    "bridge": "connect",
    "v2v": "edit", "video_to_video": "edit",
}


# ----- small helpers ---------------------------------------------------------------------------


def parse_size(size) -> tuple[int, int]:
    """'WxH' (or a (W, H) pair) -> (W, H); KinemaError naming the value if malformed or out of range."""
    if isinstance(size, str):
        text = size.strip().lower().replace("×", "x")
        parts = text.split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise KinemaError(f"size {size!r} is not WIDTHxHEIGHT (e.g. 128x128)")
        w, h = (int(p) for p in parts)
    elif isinstance(size, (tuple, list)) and len(size) == 2:
        try:
            w, h = (int(v) for v in size)
        except (TypeError, ValueError):
            raise KinemaError(f"size {size!r} must be two integers (width, height)") from None
        if any(float(v) != int(v) for v in size):
            raise KinemaError(f"size {size!r} must be two integers (width, height)")
    else:
        raise KinemaError(f"size {size!r} is not WIDTHxHEIGHT (e.g. 128x128)")
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise KinemaError(f"size {w}x{h} is out of range: width and height must be {MIN_SIDE} to {MAX_SIDE}")
    return w, h


def _round_up(x: int, m: int) -> int:
    return int(math.ceil(x / m) * m)


def _resize(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """[C, T, H, W] float -> [C, T, h, w], bilinear with antialiasing."""
    if x.shape[-2:] == (h, w):
        return x
    y = F.interpolate(x.permute(1, 0, 2, 3), size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return y.permute(1, 0, 2, 3)


def _cover_crop(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Resize [C, T, H0, W0] to cover (h, w), keeping the aspect, then crop the centre."""
    h0, w0 = x.shape[-2:]
    if (h0, w0) == (h, w):
        return x
    s = max(w / w0, h / h0)
    nh, nw = max(h, int(round(h0 * s))), max(w, int(round(w0 * s)))
    x = _resize(x, nh, nw)
    top, left = (nh - h) // 2, (nw - w) // 2
    return x[..., top:top + h, left:left + w]


def _u8_to_float(frames: np.ndarray) -> torch.Tensor:
    """[T, H, W, 3] uint8 -> [3, T, H, W] float in [-1, 1]."""
    frames = np.ascontiguousarray(frames)
    if not frames.flags.writeable:
        frames = frames.copy()
    return torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 127.5 - 1.0


def _float_to_u8(x: torch.Tensor) -> np.ndarray:
    """[3, T, H, W] float in [-1, 1] -> [T, H, W, 3] uint8."""
    x = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to("cpu", torch.uint8)
    return x.permute(1, 2, 3, 0).contiguous().numpy()


def _pad_front(x: torch.Tensor, n: int) -> torch.Tensor:
    """[C, T, ...] -> at least n frames, repeating the first frame in front."""
    if x.shape[1] >= n:
        return x
    return torch.cat([x[:, :1].expand(-1, n - x.shape[1], *x.shape[2:]), x], dim=1)


def _pad_back(x: torch.Tensor, n: int) -> torch.Tensor:
    """[C, T, ...] -> at least n frames, repeating the last frame behind."""
    if x.shape[1] >= n:
        return x
    return torch.cat([x, x[:, -1:].expand(-1, n - x.shape[1], *x.shape[2:])], dim=1)


def _models():
    from .models.dit import DiTConfig, VideoDiT
    from .models.vae import CausalVideoVAE, VAEConfig

    return VAEConfig, CausalVideoVAE, DiTConfig, VideoDiT


def _dit_attr(dit, names, default=None):
    cfg = getattr(dit, "config", None)
    for name in names:
        if cfg is not None and hasattr(cfg, name):
            return getattr(cfg, name)
    return default


def _config_dict(cfg) -> dict:
    if hasattr(cfg, "to_dict"):
        return cfg.to_dict()
    if callable(cfg):
        return cfg()
    return dict(cfg)


# ----- engines: the real one runs the networks; the dry one only counts steps ------------------


class _Run:
    """What one generate() call needs in its windows."""

    def __init__(self, pipe: "Pipeline", width: int, height: int, steps: int, guidance: float, sampler: str,
                 seed: int, shift: float | None = None, states=None, mask=None, ustates=None, umask=None,
                 layout: bool = False, guidance_interval: tuple[float, float] | None = None):
        self.pipe = pipe
        self.seed = int(seed)
        self.use_layout = bool(layout)
        self.plan: dict | None = None  # what the scene planner made of the prompt (text->video)
        self.scene = None  # and that plan placed in the clip: a SceneSpec whose layout the windows follow
        self.width, self.height = width, height
        m = pipe.size_multiple
        self.gen_width, self.gen_height = _round_up(width, m), _round_up(height, m)
        fs = pipe.spatial_factor
        self.lat_h, self.lat_w = self.gen_height // fs, self.gen_width // fs
        self.steps, self.guidance, self.sampler, self.shift = steps, guidance, sampler, shift
        self.guidance_interval = guidance_interval
        self.generator = torch.Generator().manual_seed(int(seed))
        self.states, self.mask, self.ustates, self.umask = states, mask, ustates, umask


class _Engine:
    def __init__(self, run: _Run, progress: Callable[[int, int], None] | None, total: int):
        self.run = run
        self.pipe = run.pipe
        self.ft = run.pipe.temporal_factor
        self.progress = progress
        self.total = total
        self.done = 0
        self.windows: list[dict] = []
        self.timings = {"plan": 0.0, "encode": 0.0, "denoise": 0.0, "decode": 0.0}

    def frames(self, u8: np.ndarray) -> torch.Tensor:
        """User frames already at the requested size -> generation size, float, on the device."""
        x = _u8_to_float(u8)
        x = _resize(x, self.run.gen_height, self.run.gen_width)
        return x.to(self.pipe.device)

    @torch.no_grad()
    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Latents of frames [3, 1+4m, H, W] as the start of a window -> [1, C, 1+m, h, w]."""
        t0 = time.perf_counter()
        z = self.pipe.vae.encode(x[None])
        self.timings["encode"] += time.perf_counter() - t0
        return z

    @torch.no_grad()
    def groups(self, x: torch.Tensor) -> torch.Tensor:
        """Latents of frames [3, 4k, H, W] as k group latents inside a window -> [1, C, k, h, w]."""
        t0 = time.perf_counter()
        z = self.pipe.vae.encode(torch.cat([x[:, :1], x], dim=1)[None])[:, :, 1:]
        self.timings["encode"] += time.perf_counter() - t0
        return z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        x = self.pipe.decode_window(z)
        self.timings["decode"] += time.perf_counter() - t0
        return x

    def _cond(self, n, first, last, like_shape):
        cond = torch.zeros(like_shape, device=self.pipe.device)
        mask = torch.zeros(n, dtype=torch.bool, device=self.pipe.device)
        if first is not None:
            k = first.shape[2]
            cond[:, :, :k] = first
            mask[:k] = True
        if last is not None:
            k = last.shape[2]
            cond[:, :, n - k:] = last
            mask[n - k:] = True
        return cond, mask

    @torch.no_grad()
    def window(self, n: int, first=None, last=None, init=None, start_t: float = 1.0,
               layout: torch.Tensor | None = None) -> torch.Tensor:
        """Denoise one window of n latent frames with given first/last latent frames (and a scene
        layout [1, K, n, h, w] for a layout transformer)."""
        run, pipe = self.run, self.pipe
        shape = (1, pipe.latent_channels, n, run.lat_h, run.lat_w)
        noise = torch.randn(shape, generator=run.generator).to(pipe.device)
        cond, mask = self._cond(n, first, last, shape)
        offset = self.done

        def report(step, total):
            self.done = offset + step
            if self.progress is not None:
                self.progress(self.done, self.total)

        t0 = time.perf_counter()
        with pipe.denoise_precision_context():
            z = sample(
                pipe.transformer, noise, run.states, run.mask, uncond_states=run.ustates, uncond_mask=run.umask,
                guidance=run.guidance, steps=run.steps, shift=pipe._shift(n, run.lat_h, run.lat_w, run.shift),
                cond_latents=cond if bool(mask.any()) else None, cond_mask=mask if bool(mask.any()) else None,
                start_t=start_t, init_latents=init, sampler=run.sampler, progress=report,
                generators=[run.generator], layout=layout, guidance_interval=run.guidance_interval,
            ).float()
        self.timings["denoise"] += time.perf_counter() - t0
        self.windows.append({"latents": z, "cond_latents": cond, "cond_mask": mask, "start_t": start_t})
        return z


class _DryEngine(_Engine):
    """Same interface on [3, T, 1, 1] zeros: walks a mode's windows to count the steps."""

    def __init__(self, run: _Run):
        super().__init__(run, None, 0)

    def frames(self, u8):
        return torch.zeros(3, u8.shape[0], 1, 1)

    def head(self, x):
        return torch.zeros(1, 1, 1 + (x.shape[1] - 1) // self.ft, 1, 1)

    def groups(self, x):
        return torch.zeros(1, 1, x.shape[1] // self.ft, 1, 1)

    def decode(self, z):
        return torch.zeros(3, 1 + self.ft * (z.shape[2] - 1), 1, 1)

    def window(self, n, first=None, last=None, init=None, start_t=1.0, layout=None):
        run = self.run
        shift = self.pipe._shift(n, run.lat_h, run.lat_w, run.shift)
        self.total += len(edit_schedule(run.steps, shift, start_t)) - 1
        self.windows.append({"n": n})
        return torch.zeros(1, 1, n, 1, 1)


# ----- the pipeline ------------------------------------------------------------------------------


class Pipeline:
    """Text (and image and clip) to video. Not thread-safe: `last_*` attributes describe the last call."""

    def __init__(self, vae, transformer, text_encoder, config: dict | None = None, planner=None):
        self.vae = vae
        self.transformer = transformer
        self.text_encoder = text_encoder
        self.planner = planner  # kinema.layout.ScenePlanner, for a transformer with layout channels
        cfg = dict(DEFAULT_CONFIG)
        unknown = sorted(set(config or {}) - set(DEFAULT_CONFIG))
        if unknown:
            raise KinemaError(f"unknown pipeline setting {unknown[0]!r} (known: {', '.join(DEFAULT_CONFIG)})")
        cfg.update(config or {})
        self.config = cfg
        self._check_components()
        keep_freed_memory()
        self.vae.eval()
        self.transformer.eval()
        if self.planner is not None:
            self.planner.eval()
        self.last_windows: list[dict] = []
        self.last_latents: torch.Tensor | None = None
        self.last_timings: dict[str, float] = {}

    # ----- component facts -------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        for p in self.transformer.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def temporal_factor(self) -> int:
        return int(getattr(self.vae.config, "temporal_downsample", 4))

    @property
    def spatial_factor(self) -> int:
        return int(getattr(self.vae.config, "spatial_downsample", 8))

    @property
    def patch_size(self) -> tuple[int, int, int]:
        p = _dit_attr(self.transformer, ("patch_size",), (1, 2, 2))
        if isinstance(p, int):
            return (1, p, p)
        p = tuple(int(v) for v in p)
        return p if len(p) == 3 else (1, *p[-2:])

    @property
    def size_multiple(self) -> int:
        """Generation sizes are multiples of this (16 for an x8 autoencoder and 2x2 patches)."""
        return self.spatial_factor * max(self.patch_size[1], self.patch_size[2])

    def _check_components(self) -> None:
        c_dit = _dit_attr(self.transformer, ("in_channels", "latent_channels"))
        if c_dit is not None and int(c_dit) != self.latent_channels:
            raise KinemaError(
                f"the transformer takes {c_dit} latent channels but the autoencoder makes {self.latent_channels}"
            )
        d_dit = _dit_attr(self.transformer, ("text_dim", "context_dim", "text_channels"))
        d_text = getattr(self.text_encoder, "dim", None)
        if d_dit is not None and d_text is not None and int(d_dit) != int(d_text):
            raise KinemaError(
                f"the transformer expects {d_dit}-d text states but the text encoder gives {d_text}-d"
            )
        if self.planner is not None:
            from .layout import outline_side

            channels = _dit_attr(self.transformer, ("layout_channels",))
            if not channels:
                raise KinemaError("the model has a scene planner but its transformer takes no layout "
                                  "(layout_channels 0)")
            outline_side(int(channels))  # a count the layout cannot make is named here, not mid-generation
            d_plan = self.planner.config.text_dim
            if d_text is not None and int(d_plan) != int(d_text):
                raise KinemaError(f"the scene planner reads {d_plan}-d text states but the text encoder gives "
                                  f"{d_text}-d")
        if int(self.config["max_latent_frames"]) < 2:
            raise KinemaError("max_latent_frames must be at least 2")
        # a bad value fails at load, not after denoising
        decode_dtype(self.config["decode_precision"], torch.device("cpu"))
        denoise_dtype(self.config["denoise_precision"], torch.device("cpu"))
        self._sampling_settings(None, None, None, None, None)  # so do bad sampling defaults
        self._layout_on(None)  # and a bad layout default
        self._guidance_interval(None)  # and a bad guidance interval

    def to(self, device) -> "Pipeline":
        self.vae.to(device)
        self.transformer.to(device)
        if self.planner is not None:
            self.planner.to(device)
        if hasattr(self.text_encoder, "to"):
            self.text_encoder.to(device)
        return self

    def _shift(self, latent_frames: int, lat_h: int, lat_w: int, fixed: float | None) -> float:
        """A window's sampling time shift: `fixed` (the request's or the config's, as
        `_sampling_settings` resolved it), else the token-count rule."""
        if fixed is not None:
            return float(fixed)
        tokens = num_tokens_for((latent_frames, lat_h, lat_w), self.patch_size)
        return shift_for_tokens(tokens, base_tokens=int(self.config["base_tokens"]),
                                base_shift=float(self.config["base_shift"]),
                                max_tokens=int(self.config["max_tokens"]),
                                max_shift=float(self.config["max_shift"]))

    @property
    def _context(self) -> int:
        """Context latent frames per side, leaving room for at least one generated frame."""
        lmax = int(self.config["max_latent_frames"])
        return max(1, min(int(self.config["context_latent_frames"]), (lmax - 1) // 2))

    # ----- construction ----------------------------------------------------------------------
    @classmethod
    def from_configs(cls, vae_config, dit_config, text_encoder=None, seed: int = 0, **defaults) -> "Pipeline":
        """Randomly initialised components (tests, training). `text_encoder` None: the default MiniLM."""
        _, CausalVideoVAE, _, VideoDiT = _models()
        if text_encoder is None:
            from .models.text import TextEncoder

            text_encoder = TextEncoder.from_pretrained()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            vae = CausalVideoVAE(vae_config)
            transformer = VideoDiT(dit_config)
        return cls(vae, transformer, text_encoder, defaults)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, device="cpu") -> "Pipeline":
        """Load a saved pipeline folder (model_index.json, vae/, transformer/, text_encoder/).

        `path` None loads the default model shipped in the package. Weights are read from
        safetensors only. Any problem raises KinemaError naming the component and the problem.
        """
        if path is None:
            root = DEFAULT_MODEL_DIR
            if not (root / MODEL_INDEX).is_file():
                raise KinemaError(
                    "the default model (kinema-tiny) is not shipped in this build; pass the path of a "
                    "saved model folder (Pipeline.from_pretrained(PATH) or --model PATH)"
                )
        else:
            root = Path(path).expanduser()
            if not root.exists():
                raise KinemaError(f"model folder {root} does not exist")
            if not root.is_dir():
                raise KinemaError(f"model path {root} is not a folder (expected a saved pipeline folder)")
        index = _read_json(root / MODEL_INDEX, "model index")
        for comp in ("vae", "transformer", "text_encoder"):
            if not (root / comp).is_dir():
                raise KinemaError(f"{comp}: folder {root / comp} is missing from the model")
        VAEConfig, CausalVideoVAE, DiTConfig, VideoDiT = _models()
        vae = _load_component(root, "vae", VAEConfig, CausalVideoVAE)
        transformer = _load_component(root, "transformer", DiTConfig, VideoDiT)
        te_cfg = _read_json(root / "text_encoder" / "config.json", "text_encoder")
        text_encoder = _load_text_encoder(root, te_cfg)
        planner = None
        if (root / "planner").is_dir():  # optional: the scene planner of a layout transformer
            from .layout.planner import PlannerConfig, ScenePlanner

            planner = _load_component(root, "planner", PlannerConfig, ScenePlanner)
        defaults = index.get("defaults") or {}
        if not isinstance(defaults, dict):
            raise KinemaError(f"{root / MODEL_INDEX}: 'defaults' must be an object")
        config = {k: v for k, v in defaults.items() if k in DEFAULT_CONFIG}
        config.setdefault("model_name", index.get("name") or root.name)
        pipe = cls(vae, transformer, text_encoder, config, planner=planner)
        pipe.source = str(root)
        return pipe.to(device)

    def save_pretrained(self, path: str | os.PathLike, dtype: torch.dtype | None = None,
                        max_shard_mb: float = 15.0) -> Path:
        """Write the pipeline folder atomically (a temp folder beside `path`, then renamed).

        `dtype` (e.g. torch.float16) stores floating-point weights in that type (they load back
        as float32); weights larger than `max_shard_mb` are split into numbered shards."""
        from safetensors.torch import save_file

        from . import __version__

        path = Path(path).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        try:
            index = {
                "_class_name": "KinemaPipeline",
                "_kinema_version": __version__,
                "name": self.config.get("model_name"),
                "vae": ["kinema.models.vae", type(self.vae).__name__],
                "transformer": ["kinema.models.dit", type(self.transformer).__name__],
                "text_encoder": ["kinema.models.text", type(self.text_encoder).__name__],
                "defaults": self.config,
            }
            if self.planner is not None:
                index["planner"] = ["kinema.layout.planner", type(self.planner).__name__]
            _write_json(tmp / MODEL_INDEX, index)
            components = [("vae", self.vae), ("transformer", self.transformer)]
            if self.planner is not None:
                components.append(("planner", self.planner))
            for comp, model in components:
                (tmp / comp).mkdir()
                _write_json(tmp / comp / "config.json", _config_dict(model.config))
                state = {k: v.detach().to("cpu", dtype if (dtype is not None and v.is_floating_point()) else v.dtype)
                         .contiguous().clone() for k, v in model.state_dict().items()}
                shards = _shard(state, int(max_shard_mb * 2**20))
                for i, shard in enumerate(shards):
                    name = WEIGHTS_NAME if len(shards) == 1 else WEIGHTS_NAME.replace(
                        ".safetensors", f"-{i + 1:05d}-of-{len(shards):05d}.safetensors")
                    save_file(shard, str(tmp / comp / name), metadata={"format": "pt", "component": comp})
            (tmp / "text_encoder").mkdir()
            te_cfg = _config_dict(self.text_encoder.config) if hasattr(self.text_encoder, "config") else {}
            _write_json(tmp / "text_encoder" / "config.json", te_cfg)
            give_usual_permissions(tmp)
            if path.exists():
                old = path.with_name(f".{path.name}.old-{os.getpid()}")
                os.rename(path, old)
                os.rename(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    # ----- text -------------------------------------------------------------------------------
    def encode_text(self, prompts: list[str]):
        states, mask = self.text_encoder.encode(list(prompts))
        return states.to(self.device, torch.float32), mask.to(self.device)

    def resolve_sampling(self, steps: int | None = None, guidance: float | None = None, sampler: str | None = None,
                         shift: float | None = None,
                         guidance_interval: tuple[float, float] | None = None) -> dict[str, Any]:
        """The steps, guidance, sampler, shift and guidance interval a request with these values
        would use (None: the model's default; a shift of None means the token-count rule), the transformer's
        matmul precision on this pipeline's device ("fp32" or "bf16"), and for a model with a scene
        planner whether text->video plans a layout ("planned" or "off")."""
        _, _, steps, guidance, sampler, shift = self._sampling_settings(None, steps, guidance, sampler, shift)
        low = self._denoise_dtype() == torch.bfloat16
        settings = {"steps": steps, "guidance": guidance, "sampler": sampler, "shift": shift,
                    "precision": "bf16" if low else "fp32"}
        interval = self._guidance_interval(guidance_interval)
        if interval is not None:
            settings["guidance_interval"] = list(interval)
        if self.planner is not None:
            settings["layout"] = "planned" if self._layout_on(None) else "off"
        return settings

    def _denoise_dtype(self) -> torch.dtype:
        """The transformer's matmul dtype while denoising on this pipeline's device."""
        return denoise_dtype(self.config["denoise_precision"], torch.device(self.device))

    def denoise_precision_context(self):
        """Autocast to bf16 around the sampler where `denoise_precision` asks for it (every
        generation path goes through this), a no-op context otherwise."""
        return bf16_autocast(torch.device(self.device), self._denoise_dtype())

    def _sampling_settings(self, size, steps, guidance, sampler,
                           shift) -> tuple[int, int, int, float, str, float | None]:
        """The request's size, steps, guidance, sampler and time shift, defaults from the config,
        checked. A shift of None means the config's rule (a fixed shift, or one from the token count)."""
        cfg = self.config
        width, height = parse_size(cfg["size"] if size is None else size)
        steps = _check_int(cfg["steps"] if steps is None else steps, "steps", 1, 1000)
        guidance = _check_float(cfg["guidance"] if guidance is None else guidance, "guidance", 0.0, 100.0)
        sampler = (cfg["sampler"] if sampler is None else str(sampler)).lower()
        if sampler not in SAMPLERS:
            raise KinemaError(f"sampler {sampler!r} is unknown; choose one of {', '.join(SAMPLERS)}")
        if shift is None:
            shift = cfg.get("shift")
        if shift is not None:
            shift = _check_float(shift, "shift", 0.0, 100.0)
            if shift <= 0.0:
                raise KinemaError(f"shift must be above 0 and at most 100, got {shift}")
        return width, height, steps, guidance, sampler, shift

    def _guidance_interval(self, interval) -> tuple[float, float] | None:
        """The request's guidance interval (lo, hi), or the config's; None guides every step."""
        try:
            return check_guidance_interval(self.config.get("guidance_interval") if interval is None else interval)
        except ValueError as exc:
            raise KinemaError(str(exc)) from None

    # ----- scene layout -----------------------------------------------------------------------
    def _layout_on(self, layout: bool | None) -> bool:
        """Whether text->video plans a layout: asked (or the config's default), and the model can."""
        wanted = self.config.get("layout", True) if layout is None else layout
        if not isinstance(wanted, bool):
            raise KinemaError(f"layout must be true or false, got {wanted!r}")
        return wanted and self.planner is not None

    @torch.no_grad()
    def plan_scenes(self, states: torch.Tensor, mask: torch.Tensor, seeds: list[int], num_frames: int,
                    lat_h: int, lat_w: int) -> tuple[list, list[dict | None]]:
        """The scene planner's reading of each prompt, placed in a clip of `num_frames` frames
        (positions drawn from each seed): a `SceneSpec` per prompt and a dict for the video's
        metadata (both None where the planner is unsure of the prompt)."""
        from .layout.placement import place_plan

        fs = self.spatial_factor
        specs, described = [], []
        for plan, seed in zip(self.planner.plan(states.float(), mask), seeds):
            spec = None
            if plan is not None:
                spec = place_plan(plan, lat_w * fs, lat_h * fs, num_frames, np.random.default_rng([int(seed), 71]))
            specs.append(spec)
            described.append(None if spec is None else {
                **plan.to_dict(), "starts": [[round(o.start[0], 4), round(o.start[1], 4)] for o in spec.objects]})
        return specs, described

    def scene_layouts(self, specs: list, latent_frames: int, lat_h: int, lat_w: int,
                      start_frame: int = 0) -> torch.Tensor:
        """Layouts [B, K, latent_frames, lat_h, lat_w] of planned scenes (all zeros for None), for a
        window whose latents begin at video frame `start_frame`."""
        from .layout import layout_batch, outline_side

        outline = outline_side(int(_dit_attr(self.transformer, ("layout_channels",))))
        return layout_batch(specs, latent_frames, lat_h, lat_w, self.temporal_factor, start_frame,
                            outline).to(self.device)

    def plan_layouts(self, states: torch.Tensor, mask: torch.Tensor, seeds: list[int], latent_frames: int,
                     lat_h: int, lat_w: int) -> tuple[torch.Tensor, list[dict | None]]:
        """`plan_scenes` for one window of `latent_frames`, as its layouts and the metadata dicts."""
        specs, described = self.plan_scenes(states, mask, seeds, 1 + self.temporal_factor * (latent_frames - 1),
                                            lat_h, lat_w)
        return self.scene_layouts(specs, latent_frames, lat_h, lat_w), described

    # ----- generation -------------------------------------------------------------------------
    def generate(self, prompt: str, *, seconds: float | None = None, num_frames: int | None = None,
                 size: str | tuple[int, int] | None = None, fps: float | None = None, steps: int | None = None,
                 guidance: float | None = None, negative_prompt: str | None = None, seed: int = 0,
                 image=None, video=None, end_video=None, mode: str | None = None, strength: float | None = None,
                 loop: bool = False, sampler: str | None = None, shift: float | None = None,
                 progress: bool | Callable[[int, int], None] = True, return_latents: bool = False,
                 layout: bool | None = None, guidance_interval: tuple[float, float] | None = None):
        """Generate a video; see the module docstring for modes and frame counts.

        Returns a `Video` (or `(video, windows)` with return_latents=True, where each window is a
        dict of the final `latents`, the `cond_latents` and the `cond_mask` of given frames).
        `layout` (default: the config's) lets a model with a scene planner plan text->video first.
        `guidance_interval` (lo, hi) (default: the config's) guides only the steps whose time lies in it.
        """
        t_start = time.perf_counter()
        cfg = self.config
        prompt = _check_prompt(prompt, "prompt")
        negative = _check_prompt(negative_prompt, "negative prompt", allow_empty=True) if negative_prompt else ""
        width, height, steps, guidance, sampler, shift = self._sampling_settings(size, steps, guidance, sampler,
                                                                                  shift)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**63:
            raise KinemaError(f"seed must be a whole number from 0 to 2**63-1, got {seed!r}")
        strength = _check_float(cfg["strength"] if strength is None else strength, "strength", 0.0, 1.0)
        if strength <= 0.0:
            raise KinemaError(f"strength must be above 0 and at most 1, got {strength}")
        mode = self._resolve_mode(mode, image, video, end_video, loop)

        # Inputs, at exactly the requested size.
        image_u8, _ = self._load_input(image, "image", width, height)
        video_u8, video_fps = self._load_input(video, "video", width, height)
        end_u8, _ = self._load_input(end_video, "end video", width, height)
        if image_u8 is not None:
            image_u8 = image_u8[:1]
        if fps is None:
            fps = video_fps if video_fps else cfg["fps"]
        fps = _check_float(fps, "fps", 1.0, 240.0)
        count = self._frame_count(mode, seconds, num_frames, fps, video_u8)

        interval = self._guidance_interval(guidance_interval)
        run = _Run(self, width, height, steps, guidance, sampler, int(seed), shift,
                   layout=self._layout_on(layout), guidance_interval=interval)
        dry = _DryEngine(run)
        self._run_mode(dry, mode, count, image_u8, video_u8, end_u8, strength)

        t0 = time.perf_counter()
        states, mask = self.encode_text([prompt, negative])
        run.states, run.mask = states[:1], mask[:1]
        run.ustates, run.umask = states[1:], mask[1:]
        t_text = time.perf_counter() - t0

        bar = None
        callback = None
        if callable(progress):
            callback = progress
        elif progress:
            from tqdm import tqdm

            bar = tqdm(total=dry.total, desc="kinema", unit="step", leave=False)

            def callback(done, total):
                bar.update(done - bar.n)

        engine = _Engine(run, callback, dry.total)
        try:
            segments = self._run_mode(engine, mode, count, image_u8, video_u8, end_u8, strength)
        finally:
            if bar is not None:
                bar.close()

        parts = []
        for kind, data in segments:
            if kind == "given":
                parts.append(data)
            else:
                parts.append(_float_to_u8(_resize(data, height, width)))
        frames = np.concatenate(parts, axis=0)

        label = "image" if mode == "t2v" and frames.shape[0] == 1 else mode
        # guidance 1 makes one conditional call a step: a negative prompt given then was never read
        negative_read = negative if guidance != 1.0 else ""
        metadata = {
            "generator": "kinema",
            "model": str(cfg.get("model_name")),
            "prompt": prompt,
            "negative_prompt": negative_read or None,
            "seed": int(seed),
            "mode": label,
            "steps": steps,
            "guidance": guidance,
            "sampler": sampler,
            "shift": shift,
            "size": f"{width}x{height}",
            "num_frames": int(frames.shape[0]),
            "fps": fps,
        }
        if negative and not negative_read:
            metadata["negative_prompt_unused"] = negative
        if interval is not None:
            metadata["guidance_interval"] = list(interval)
        if run.plan is not None:
            metadata["plan"] = run.plan
        if mode == "edit":
            metadata["strength"] = strength
        if mode == "loop":
            metadata["loop"] = True
        self.last_windows = engine.windows
        self.last_latents = engine.windows[-1]["latents"] if engine.windows else None
        self.last_timings = {"text": t_text, **engine.timings, "total": time.perf_counter() - t_start}
        video_out = Video(frames, fps=fps, metadata=metadata)
        if return_latents:
            return video_out, engine.windows
        return video_out

    @torch.no_grad()
    def generate_batch(self, prompts: list[str], *, seeds: list[int], num_frames: int | None = None,
                       seconds: float | None = None, size: str | tuple[int, int] | None = None,
                       fps: float | None = None, steps: int | None = None, guidance: float | None = None,
                       negative_prompt: str | None = None, sampler: str | None = None,
                       shift: float | None = None, progress: bool = False,
                       layout: bool | None = None,
                       guidance_interval: tuple[float, float] | None = None,
                       return_latents: bool = False) -> list[Video] | tuple[list[Video], torch.Tensor]:
        """Text->video for many prompts at once, one window each, batched through the transformer;
        with `return_latents`, also the drawn latents [B, C, n, h, w] (for `videos_from_latents`).

        Each video equals `generate(prompt, seed=seed, ...)` up to float rounding: the same
        per-seed noise, schedule and guidance. Used by `kinema eval`; clips longer than one window
        go through `generate`."""
        if len(prompts) != len(seeds):
            raise KinemaError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        if not prompts:
            return []
        cfg = self.config
        prompts = [_check_prompt(p, "prompt") for p in prompts]
        negative = _check_prompt(negative_prompt, "negative prompt", allow_empty=True) if negative_prompt else ""
        width, height, steps, guidance, sampler, shift = self._sampling_settings(size, steps, guidance, sampler,
                                                                                  shift)
        fps = _check_float(cfg["fps"] if fps is None else fps, "fps", 1.0, 240.0)
        count = self._frame_count("t2v", seconds, num_frames, fps, None)
        interval = self._guidance_interval(guidance_interval)
        run = _Run(self, width, height, steps, guidance, sampler, 0, shift, guidance_interval=interval)
        ft = self.temporal_factor
        n = 1 + math.ceil((count - 1) / ft)
        if n > int(cfg["max_latent_frames"]):
            raise KinemaError(f"generate_batch makes one window ({1 + ft * (int(cfg['max_latent_frames']) - 1)} "
                              f"frames at most); asked for {count}")
        shape = (1, self.latent_channels, n, run.lat_h, run.lat_w)
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        noise = torch.cat([torch.randn(shape, generator=g) for g in generators])
        states, mask = self.encode_text(prompts + [negative])
        layouts, plans = None, [None] * len(prompts)
        if self._layout_on(layout):
            layouts, plans = self.plan_layouts(states[:-1], mask[:-1], seeds, n, run.lat_h, run.lat_w)
        with self.denoise_precision_context():
            z = sample(self.transformer, noise.to(self.device), states[:-1], mask[:-1], uncond_states=states[-1:],
                       uncond_mask=mask[-1:], guidance=guidance, steps=steps,
                       shift=self._shift(n, run.lat_h, run.lat_w, shift), sampler=sampler,
                       generators=generators, layout=layouts, guidance_interval=interval).float()
        metadata = []
        for i, prompt in enumerate(prompts):
            meta = {"generator": "kinema", "model": str(cfg.get("model_name")), "prompt": prompt,
                    "seed": int(seeds[i]), "mode": "t2v", "steps": steps, "guidance": guidance,
                    "sampler": sampler, "shift": shift, "size": f"{width}x{height}", "num_frames": count,
                    "fps": fps}
            if interval is not None:
                meta["guidance_interval"] = list(interval)
            if plans[i] is not None:
                meta["plan"] = plans[i]
            metadata.append(meta)
        videos = self.videos_from_latents(z, metadata)
        return (videos, z.cpu()) if return_latents else videos

    @torch.no_grad()
    def decode_window(self, z: torch.Tensor) -> torch.Tensor:
        """One window's latents [1, C, n, h, w] -> frames [3, T, H, W] in [-1, 1], at the
        pipeline's decode precision and chunking."""
        with bf16_autocast(z.device, decode_dtype(self.config["decode_precision"], z.device)):
            x = self.vae.decode(z, chunk_size=self.config.get("decode_chunk_size"))[0].float()
        return x.clamp(-1.0, 1.0)

    def videos_from_latents(self, latents: torch.Tensor, metadata: list[dict]) -> list[Video]:
        """Latents [B, C, n, h, w] of one window each, as `generate_batch` draws them -> videos
        decoded by this pipeline's autoencoder (`kinema eval --latents-from` judges a new decoder on
        a run's kept latents this way). Each metadata dict, as generate_batch writes it (`size`
        'WxH', `num_frames`, `fps`, ...), names its video's frames and becomes its metadata."""
        if latents.dim() != 5 or latents.shape[1] != self.latent_channels or latents.shape[0] != len(metadata):
            raise KinemaError(f"latents of shape {tuple(latents.shape)} for {len(metadata)} videos: this "
                              f"pipeline decodes [videos, {self.latent_channels}, frames, height, width]")
        videos = []
        for i, meta in enumerate(metadata):
            width, height = parse_size(meta["size"])
            frames = self.decode_window(latents[i:i + 1].to(self.device))[:, :int(meta["num_frames"])]
            videos.append(Video(_float_to_u8(_resize(frames, height, width)), fps=float(meta["fps"]),
                                metadata=dict(meta)))
        return videos

    # ----- modes ------------------------------------------------------------------------------
    @staticmethod
    def _resolve_mode(mode, image, video, end_video, loop) -> str:
        if mode is not None:
            key = str(mode).strip().lower().replace("-", "_").replace(" ", "_")
            key = _MODE_ALIASES.get(key, key)
            if key not in MODES:
                raise KinemaError(f"mode {mode!r} is unknown; choose one of {', '.join(MODES)}")
            mode = key
        if mode is None:
            if video is not None and end_video is not None:
                mode = "connect"
            elif video is not None:
                mode = "extend"
            elif loop:
                mode = "loop"
            elif image is not None:
                mode = "i2v"
            else:
                mode = "t2v"
        if loop:
            if mode not in ("loop", "t2v", "i2v"):
                raise KinemaError(f"loop=True works from text or an image, not with mode {mode!r}")
            mode = "loop"
        if mode == "connect" and (video is None or end_video is None):
            raise KinemaError("mode 'connect' needs both video= and end_video= (--video and --end-video)")
        if mode in ("extend", "extend_backward", "edit") and video is None:
            raise KinemaError(f"mode {mode!r} needs a clip: pass video= (--video)")
        if mode in ("extend", "extend_backward", "edit") and end_video is not None:
            raise KinemaError(f"mode {mode!r} takes no end_video; end_video= is for connecting two clips")
        if mode in ("extend", "extend_backward", "edit", "connect") and image is not None:
            raise KinemaError(f"mode {mode!r} takes a clip (video=), not image=")
        if mode in ("t2v", "i2v", "loop") and (video is not None or end_video is not None):
            raise KinemaError(f"mode {mode!r} takes no video=; use mode 'extend', 'extend_backward', 'edit' or 'connect'")
        if mode == "t2v" and image is not None:
            raise KinemaError("mode 't2v' takes no image; use mode 'i2v' to animate an image")
        if mode == "i2v" and image is None:
            raise KinemaError("mode 'i2v' needs an image: pass image= (--image)")
        return mode

    def _frame_count(self, mode, seconds, num_frames, fps, video_u8) -> int:
        max_frames = int(self.config["max_frames"])
        if seconds is not None and num_frames is not None:
            raise KinemaError("give either seconds or num_frames, not both")
        if num_frames is not None:
            count = _check_int(num_frames, "num_frames", 1, max_frames)
        elif seconds is not None:
            seconds = _check_float(seconds, "seconds", 0.0, 1e6)
            if seconds <= 0:
                raise KinemaError(f"seconds must be positive, got {seconds}")
            count = max(1, int(round(seconds * fps)))
            if count > max_frames:
                raise KinemaError(f"{seconds} s at {fps:g} fps is {count} frames; the most is {max_frames}")
        elif mode == "edit":
            count = int(video_u8.shape[0])
        else:
            count = max(1, int(round(float(self.config["seconds"]) * fps)))
        if mode == "edit" and count > video_u8.shape[0]:
            raise KinemaError(f"an edit keeps the clip's length: asked for {count} frames, the clip has {video_u8.shape[0]}")
        if mode == "i2v" and count < 2:
            raise KinemaError("image->video needs at least 2 frames (frame 0 is the image)")
        return count

    def _load_input(self, obj, what: str, width: int, height: int):
        """A path, PIL image, array [H,W,3]/[T,H,W,3] or Video -> (uint8 [T,height,width,3], fps or None)."""
        if obj is None:
            return None, None
        fps = None
        if isinstance(obj, Video):
            frames, fps = obj.frames, obj.fps
        elif isinstance(obj, (str, os.PathLike)):
            p = Path(obj).expanduser()
            if not p.exists():
                raise KinemaError(f"{what} file {str(p)!r} does not exist")
            try:
                v = Video.read(p)
            except VideoError as exc:
                raise KinemaError(f"{what}: {exc}") from None
            frames = v.frames
            if p.is_file() and p.suffix.lower() not in _IMAGE_SUFFIXES:
                fps = v.fps
        else:
            try:
                from PIL import Image

                if isinstance(obj, Image.Image):
                    obj = np.asarray(obj.convert("RGB"))
            except ImportError:  # pragma: no cover - Pillow is a dependency
                pass
            if torch.is_tensor(obj):
                obj = obj.detach().cpu().numpy()
            try:
                frames = Video(np.asarray(obj)).frames
            except VideoError as exc:
                raise KinemaError(f"{what}: {exc}") from None
            except (TypeError, ValueError) as exc:
                raise KinemaError(f"{what}: not an image or video ({exc})") from None
        x = _cover_crop(_u8_to_float(frames), height, width)
        return _float_to_u8(x), fps

    def _run_mode(self, e: _Engine, mode, count, image_u8, video_u8, end_u8, strength):
        """Run a mode on an engine; returns segments [("given", uint8 frames) | ("new", gen frames)]."""
        if mode == "t2v":
            return [("new", self._text_to_video(e, count))]
        if mode == "i2v":
            return [("given", image_u8), ("new", self._extend_forward(e, e.frames(image_u8), count - 1))]
        if mode == "extend":
            return [("given", video_u8), ("new", self._extend_forward(e, e.frames(video_u8), count))]
        if mode == "extend_backward":
            return [("new", self._extend_backward(e, e.frames(video_u8), count)), ("given", video_u8)]
        if mode == "connect":
            bridge = self._connect(e, e.frames(video_u8), e.frames(end_u8), count)
            return [("given", video_u8), ("new", bridge), ("given", end_u8)]
        if mode == "loop":
            return self._loop(e, count, image_u8)
        if mode == "edit":
            return [("new", self._edit(e, e.frames(video_u8[:count]), strength))]
        raise KinemaError(f"mode {mode!r} is unknown")  # pragma: no cover - _resolve_mode checks

    def _text_to_video(self, e: _Engine, count: int) -> torch.Tensor:
        """`count` frames from text alone: one window, then forward extension."""
        ft, lmax = e.ft, int(self.config["max_latent_frames"])
        n = min(lmax, 1 + math.ceil((count - 1) / ft))
        if e.run.use_layout and not isinstance(e, _DryEngine):
            # the whole clip is planned at once; each window gets its stretch of the plan
            t0 = time.perf_counter()
            specs, plans = self.plan_scenes(e.run.states, e.run.mask, [e.run.seed], max(count, 1 + ft * (n - 1)),
                                            e.run.lat_h, e.run.lat_w)
            e.run.scene, e.run.plan = specs[0], plans[0]
            e.timings["plan"] += time.perf_counter() - t0
        frames = e.decode(e.window(n, layout=self._window_layout(e, n, 0)))[:, :count]
        if frames.shape[1] < count:
            frames = torch.cat([frames, self._extend_forward(e, frames, count - frames.shape[1], planned=True)],
                               dim=1)
        return frames

    def _window_layout(self, e: _Engine, latent_frames: int, start_frame: int) -> torch.Tensor | None:
        """The planned scene's layout for a window from video frame `start_frame`; None unplanned."""
        if e.run.scene is None:
            return None
        return self.scene_layouts([e.run.scene], latent_frames, e.run.lat_h, e.run.lat_w, start_frame)

    def _extend_forward(self, e: _Engine, clip: torch.Tensor, count: int, planned: bool = False) -> torch.Tensor:
        """`count` new frames continuing `clip` [3, P, H, W] (gen space); returns only the new frames.
        `planned`: the clip is the start of the run's planned scene, whose layout the windows follow."""
        ft, lmax, ctx = e.ft, int(self.config["max_latent_frames"]), self._context
        timeline, new = clip, []
        remaining = count
        timeline_start = 0  # the video frame timeline[:, 0] is
        while remaining > 0:
            p = timeline.shape[1]
            k = min(ctx, 1 + (p - 1) // ft)
            c = 1 + ft * (k - 1)
            m = min(lmax - k, math.ceil(remaining / ft))
            layout = self._window_layout(e, k + m, timeline_start + p - c) if planned else None
            z = e.window(k + m, first=e.head(timeline[:, p - c:]), layout=layout)
            frames = e.decode(z)[:, c:c + remaining]
            new.append(frames)
            timeline = torch.cat([timeline[:, p - c:], frames], dim=1)
            timeline_start += p - c
            remaining -= frames.shape[1]
        return torch.cat(new, dim=1) if new else clip[:, :0]

    def _extend_backward(self, e: _Engine, clip: torch.Tensor, count: int) -> torch.Tensor:
        """`count` new frames leading into `clip`; returns only the new frames."""
        ft, lmax, ctx = e.ft, int(self.config["max_latent_frames"]), self._context
        timeline, new = clip, []
        remaining = count
        while remaining > 0:
            p = timeline.shape[1]
            k = max(1, min(ctx, p // ft))
            last = e.groups(_pad_front(timeline[:, :ft * k], ft * k))
            m = min(lmax - k, 1 + math.ceil((remaining - 1) / ft))
            z = e.window(m + k, last=last)
            frames = e.decode(z)[:, :1 + ft * (m - 1)]
            frames = frames[:, -remaining:] if frames.shape[1] > remaining else frames
            new.insert(0, frames)
            timeline = torch.cat([frames, timeline[:, :ft * ctx]], dim=1)
            remaining -= frames.shape[1]
        return torch.cat(new, dim=1) if new else clip[:, :0]

    def _connect(self, e: _Engine, clip_a: torch.Tensor, clip_b: torch.Tensor, count: int) -> torch.Tensor:
        """A bridge of exactly `count` frames from the end of clip_a into the start of clip_b.

        Windows hold whole groups of 4 bridge frames; when `count` is not a multiple of 4 the
        bridge is made a little longer and evenly spaced frames are dropped, so both joins stay
        continuous."""
        ft, lmax, ctx = e.ft, int(self.config["max_latent_frames"]), self._context
        total_lat = math.ceil(count / ft)
        kb = max(1, min(ctx, clip_b.shape[1] // ft))
        last = e.groups(_pad_front(clip_b[:, :ft * kb], ft * kb))
        timeline, new = clip_a, []
        remaining = total_lat
        while True:
            p = timeline.shape[1]
            ka = min(ctx, 1 + (p - 1) // ft)
            c = 1 + ft * (ka - 1)
            room = lmax - ka - kb  # >= 1 as ctx <= (lmax - 1) // 2
            first = e.head(timeline[:, p - c:])
            if remaining <= room:
                z = e.window(ka + remaining + kb, first=first, last=last)
                new.append(e.decode(z)[:, c:c + ft * remaining])
                break
            m = min(lmax - ka, remaining - room)
            frames = e.decode(e.window(ka + m, first=first))[:, c:]
            new.append(frames)
            timeline = torch.cat([timeline[:, p - c:], frames], dim=1)
            remaining -= m
        bridge = torch.cat(new, dim=1)
        if bridge.shape[1] > count:
            keep = torch.linspace(0, bridge.shape[1] - 1, count).round().long()
            bridge = bridge[:, keep]
        return bridge

    def _loop(self, e: _Engine, count: int, image_u8):
        """A clip whose last frame leads back into its first: a base clip, then a bridge from its end
        to its start (a connection of the clip to itself); the result is base + bridge."""
        if count == 1:
            return [("new", self._text_to_video(e, 1))] if image_u8 is None else [("given", image_u8)]
        ft, lmax, ctx = e.ft, int(self.config["max_latent_frames"]), self._context
        room = ft * max(1, lmax - 2 * ctx)
        bridge_len = max(1, min(room, int(round(count / 3))))
        base_len = count - bridge_len
        if image_u8 is not None:
            base = e.frames(image_u8)
            if base_len > 1:
                base = torch.cat([base, self._extend_forward(e, base, base_len - 1)], dim=1)
            segments = [("given", image_u8)]
            base_new = base[:, 1:]
        else:
            base = self._text_to_video(e, base_len)
            segments = []
            base_new = base
        bridge = self._connect(e, base, base, bridge_len)
        if base_new.shape[1]:
            segments.append(("new", base_new))
        segments.append(("new", bridge))
        return segments

    def _edit(self, e: _Engine, clip: torch.Tensor, strength: float) -> torch.Tensor:
        """Video->video: each window starts from the clip's latents noised to `strength`; windows
        after the first are also given the end of the edited result so far."""
        ft, lmax, ctx = e.ft, int(self.config["max_latent_frames"]), self._context
        count = clip.shape[1]
        n = min(lmax, 1 + math.ceil((count - 1) / ft))
        source = _pad_back(clip, count + ft * lmax)
        init = e.head(source[:, :1 + ft * (n - 1)])
        out = e.decode(e.window(n, init=init, start_t=strength))[:, :count]
        while out.shape[1] < count:
            p = out.shape[1]
            k = min(ctx, 1 + (p - 1) // ft)
            c = 1 + ft * (k - 1)
            m = min(lmax - k, math.ceil((count - p) / ft))
            given = e.head(out[:, p - c:])
            init = e.head(torch.cat([out[:, p - c:], source[:, p:p + ft * m]], dim=1))
            z = e.window(k + m, first=given, init=init, start_t=strength)
            out = torch.cat([out, e.decode(z)[:, c:c + count - p]], dim=1)
        return out


load_pipeline = Pipeline.from_pretrained


# ----- validation and files ----------------------------------------------------------------------


def _check_prompt(text, what: str, allow_empty: bool = False) -> str:
    if text is None or not isinstance(text, str):
        raise KinemaError(f"the {what} must be text, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped and not allow_empty:
        raise KinemaError(f"the {what} is empty")
    if len(stripped) > MAX_PROMPT_CHARS:
        raise KinemaError(f"the {what} is {len(stripped)} characters long; the most is {MAX_PROMPT_CHARS}")
    return stripped


def _check_int(value, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool):
        raise KinemaError(f"{what} must be a whole number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise KinemaError(f"{what} must be a whole number, got {value!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise KinemaError(f"{what} must be a whole number, got {value!r}")
    if not lo <= int(number) <= hi:
        raise KinemaError(f"{what} must be from {lo} to {hi}, got {int(number)}")
    return int(number)


def _check_float(value, what: str, lo: float, hi: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise KinemaError(f"{what} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number) or not lo <= number <= hi:
        raise KinemaError(f"{what} must be a number from {lo:g} to {hi:g}, got {value!r}")
    return number


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise KinemaError(f"{what}: {path} is missing")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KinemaError(f"{what}: {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise KinemaError(f"{what}: {path} must hold a JSON object")
    return data


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def _shard(state: dict[str, torch.Tensor], max_bytes: int) -> list[dict[str, torch.Tensor]]:
    """Split a state dict into consecutive shards of at most `max_bytes` (a bigger tensor gets its own)."""
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k, v in state.items():
        n = v.numel() * v.element_size()
        if shards[-1] and size + n > max_bytes:
            shards.append({})
            size = 0
        shards[-1][k] = v
        size += n
    return shards


def _load_component(root: Path, comp: str, config_cls, model_cls):
    from safetensors.torch import load_file

    folder = root / comp
    cfg_dict = _read_json(folder / "config.json", comp)
    try:
        config = config_cls.from_dict(cfg_dict)
    except (KinemaError, TypeError, ValueError, KeyError) as exc:
        raise KinemaError(f"{comp}: bad {folder / 'config.json'}: {exc}") from None
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        if any(folder.glob("*.bin")) or any(folder.glob("*.pt")) or any(folder.glob("*.pth")):
            raise KinemaError(f"{comp}: only pickle weights in {folder}; Kinema loads .safetensors files only")
        raise KinemaError(f"{comp}: no .safetensors weights file in {folder}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            part = load_file(str(f), device="cpu")
        except Exception as exc:  # safetensors raises its own error type for damaged files
            raise KinemaError(f"{comp}: {f} is not a readable safetensors file ({exc})") from None
        state.update(part)
    try:
        with skip_weight_init():  # the file replaces every weight
            model = model_cls(config)
    except (KinemaError, TypeError, ValueError) as exc:
        raise KinemaError(f"{comp}: cannot build the model from {folder / 'config.json'}: {exc}") from None
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} in the file vs {tuple(v.shape)} from the config"
             for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing ({_some(missing)})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected ({_some(unexpected)})")
        if wrong:
            problems.append(f"{len(wrong)} with the wrong shape ({_some(wrong)})")
        raise KinemaError(f"{comp}: the weights in {folder} do not match its config.json: tensors " + "; ".join(problems))
    state = {k: v.to(expected[k].dtype) for k, v in state.items()}  # e.g. float16 files -> float32 model
    bad = [k for k, v in state.items() if not all_finite(v)]
    if bad:
        raise KinemaError(f"{comp}: the weights in {folder} hold NaN or infinite values ({_some(bad)})")
    model.load_state_dict(state, strict=True, assign=True)
    model.eval()
    return model


def _precision_dtype(setting: str, precision: str, device: torch.device) -> torch.dtype:
    """A precision setting ("fp32", "bf16" or "auto") as a dtype; "auto" is bf16 on a CPU whose
    oneDNN has native bf16 (AMX or AVX512-BF16), fp32 elsewhere, GPUs included. A KinemaError naming
    `setting` for any other value; a warning for "bf16" on a CPU that can only emulate it."""
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        if device.type == "cpu" and not cpu_has_native_bf16():
            warnings.warn(f"{setting} bf16: {BF16_EMULATED}; use 'auto' or 'fp32'", RuntimeWarning, stacklevel=3)
        return torch.bfloat16
    if precision != "auto":
        raise KinemaError(f"{setting} must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else torch.float32


def bf16_autocast(device: torch.device, dtype: torch.dtype):
    """Autocast to bf16 on `device` when `dtype` is bf16, a no-op context otherwise."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)


def decode_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The decoder's compute dtype for a `decode_precision` setting: "fp32", "bf16", or "auto"
    (bf16 on a CPU whose oneDNN has native bf16, e.g. AVX512-BF16 or AMX; fp32 elsewhere)."""
    return _precision_dtype("decode_precision", precision, device)


def denoise_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The transformer's matmul dtype while denoising, for a `denoise_precision` setting: "fp32",
    "bf16" (autocast), or "auto": bf16 on a CPU whose oneDNN has native bf16 (AMX, or AVX512-BF16),
    where its matmuls run at twice fp32's peak or more (benchmarks/generate.py: denoising 1.9x
    faster with AMX, 1.3-1.5x with AVX512-BF16), fp32 elsewhere (on an AVX2 CPU torch emulates
    bf16, far slower), GPUs included."""
    return _precision_dtype("denoise_precision", precision, device)


def _load_text_encoder(root: Path, cfg: dict):
    from .models.text import TextEncoder

    name = cfg.get("name_or_path")
    if name is not None:
        local = root / "text_encoder" / str(name)
        if not Path(name).is_absolute() and local.exists():
            name = str(local)
    try:
        return TextEncoder.from_pretrained(name, max_length=int(cfg.get("max_length", 32)))
    except KinemaError as exc:
        raise KinemaError(f"text_encoder: {exc}") from None
    except (OSError, ValueError, TypeError) as exc:
        raise KinemaError(f"text_encoder: cannot load {name or 'the default MiniLM encoder'}: {exc}") from None


def _some(items: list[str], n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", ... (+{len(items) - n} more)" if len(items) > n else "")
