"""Training configuration: dataclasses, the `smoke` and `tiny` presets, JSON overrides.

A run's configuration is a preset (per stage: `vae` or `dit`) with any field replaced by a JSON
file (`--config FILE.json`, nested like `to_dict()`), then by command-line flags. Unknown fields
are errors that name them. `model` holds the fields of the model's own config dataclass
(`VAEConfig` or `DiTConfig`); they are checked against that dataclass when the run starts.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from ..errors import KinemaError

STAGES = ("vae", "dit")
PRESETS = ("smoke", "tiny")


@dataclass
class OptimConfig:
    lr: float = 3e-4
    min_lr_ratio: float = 0.1          # cosine decays to lr * min_lr_ratio at the last step
    warmup_steps: int = 100            # linear warm-up from 0
    weight_decay: float = 0.01         # on matrices and kernels only (not norms, biases, embeddings' scales)
    betas: list = field(default_factory=lambda: [0.9, 0.99])
    eps: float = 1e-8
    grad_clip: float = 1.0             # max global grad norm; 0 = off
    batch_size: int = 4                # per process (a bucket may set its own)
    grad_accum: int = 1                # micro-batches per optimiser step


@dataclass
class DataConfig:
    source: str = "world"              # "world" (the procedural world, train split only) or a folder path
    buckets: list = field(default_factory=lambda: [[128, 128, 25]])  # [w, h, frames(, batch)]
    fps: float = 12.0
    max_objects: int = 3
    object_weights: list = field(default_factory=list)  # world: weight of 1..max_objects objects; [] = 45/35/20 %
    size_weights: list = field(default_factory=list)    # world: weight of small, large objects; [] = even
    shape_weights: list = field(default_factory=list)   # world: weight of circle, square, triangle, star; [] = even
    group_probability: float = 0.0     # world: chance a scene of 2+ objects is one identical group (counting)
    weights_scope: str = "all"         # world: scenes the size/shape weights apply to; "distinct" = 2+ objects, not a group
    relation_captions: bool = True     # world: caption two objects by their spatial relation where it is clear
    mirror_pairs: bool = False         # world, dit: half of each batch is the other half mirrored, same noise
    window_of_frames: int = 0          # world, vae: shorter clips are windows of a scene this long (its speed); 0 = off
    num_workers: int = 0               # DataLoader workers per process
    cache_clips: int = 32              # decoded folder clips kept in memory per worker
    latent_cache: bool = False         # dit: encode batches once to safetensors shards, then train from them
    latent_cache_batches: int = 256    # how many batches the cache holds (all processes together)
    latent_cache_dir: str = ""         # default OUT/latent_cache


@dataclass
class TrainConfig:
    stage: str = "vae"
    preset: str = "tiny"
    model: dict = field(default_factory=dict)   # fields of VAEConfig / DiTConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    steps: int = 1000
    time_limit_s: float = 0.0          # > 0: stop (checkpoint + export) after this much training time;
                                       # the LR schedule then runs on whichever of steps or time ends first
    seed: int = 0
    precision: str = "auto"            # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32
    parallel: str = "ddp"              # ddp | fsdp (under torchrun)
    compile: bool = False              # torch.compile the trained model
    ema_decay: float = 0.0             # 0 = no EMA; dit exports the EMA weights
    init: str = ""                     # start from these weights (a pipeline folder or its vae/ / transformer/):
                                       # fine-tuning; the model config must match them. A resumed
                                       # checkpoint takes precedence
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 10
    # vae
    kl_weight: float = 1e-4            # loss = MSE + L1 + kl_weight * KL(posterior || N(0, 1))
    motion_loss_weight: float = 0.0    # + this * L1 of frame-to-frame differences (sharp moving objects)
    edge_loss_weight: float = 0.0      # + this * L1 of neighbouring-pixel differences (sharp edges)
    object_loss_weight: float = 0.0    # vae: + this * (MSE + L1) averaged over foreground pixels (objects, ghosts);
                                       # dit (world data): + this * the flow loss averaged over latent positions
                                       # that hold an object, in the clip or in the prediction
    object_loss_balance: bool = False  # vae, dit: weigh the object term so a small object counts as much as a large one
    shape_loss_weight: float = 0.0     # vae, world: + this * a frozen shape critic's cross-entropy on object crops
    shape_critic_steps: int = 400      # vae: steps to train that critic on ground-truth crops before the run
    vae_trainable: str = "all"         # "all" | "decoder": keep the encoder (and latent statistics) of
                                       # `init`, so the latent space, and a transformer trained on it, stay valid
    latent_stats_batches: int = 8      # batches for the per-channel latent mean/std at the end
    decoder_latents: str = "encoded"   # vae with vae_trainable "decoder": what the decoder learns to decode:
                                       # "encoded" (posterior samples of each clip) or "regenerated" (each
                                       # clip's latents noised to a time in regenerate_times and denoised back
                                       # by a trained pipeline's transformer: what it draws; kinema.train.regenerate)
    regenerate_from: str = ""          # decoder_latents "regenerated": that pipeline folder ("" = `init`)
    regenerate_times: list = field(default_factory=lambda: [0.2, 0.5])  # [lo, hi] start times, 1 = noise
    regenerate_share: float = 1.0      # share of the clips remade; the others keep their posterior sample
    # dit
    vae: str = ""                      # VAE export folder (OUT/final of a vae run); "" = random (smoke only)
    text_encoder: str = ""             # local Hugging Face encoder; "" = the default MiniLM
    text_max_length: int = 32
    caption_dropout: float = 0.1       # captions replaced by "" (classifier-free guidance)
    guidance_distill: float = 0.0      # > 0: learn `init`'s guided velocity at this scale in one forward
                                       # (half the sampling cost); the export then samples with guidance 1
    grounding_loss_weight: float = 0.0 # dit (world data): + this * the grounding loss: the cross-attention of each
                                       # size, colour and shape word should fall on the object it names
    pair_loss_weight: float = 0.0      # dit with data.mirror_pairs: + this * the error of each pair's difference
                                       # (what tells a scene from its mirror: the words left and right)
    layout_dropout: float = 0.2        # dit with model.layout_channels: share of clips trained without their layout
                                       # (the frame-conditioned modes and folder clips go without one)
    layout_caption_dropout: float = 0.0  # dit with layouts: share of the clips that keep their layout whose caption
                                       # is dropped, so the layout alone must say which colour and shape go where
    timestep_shift: float = 0.0        # > 0: shift training timesteps by this fixed amount (towards noise,
                                       # where a sampler with a large shift spends its steps); 0: by token count
    pipeline: dict = field(default_factory=dict)  # defaults stored in the exported pipeline's config
    out: str = ""                      # run folder (--out)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


# ----- presets ----------------------------------------------------------------------------------

def preset(name: str, stage: str) -> TrainConfig:
    if stage not in STAGES:
        raise KinemaError(f"unknown stage {stage!r}; choose one of: {', '.join(STAGES)}")
    if name not in PRESETS:
        raise KinemaError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return _PRESETS[(name, stage)]()


def _smoke_vae() -> TrainConfig:
    return TrainConfig(
        stage="vae", preset="smoke",
        model=dict(base_channels=8, latent_channels=4),
        optim=OptimConfig(lr=1e-3, warmup_steps=2, batch_size=2),
        data=DataConfig(buckets=[[32, 32, 5], [48, 32, 5], [32, 32, 1, 4]], max_objects=2),
        steps=4, ema_decay=0.0, checkpoint_every=2, keep_checkpoints=2, log_every=1, latent_stats_batches=2,
    )


def _smoke_dit() -> TrainConfig:
    return TrainConfig(
        stage="dit", preset="smoke",
        model=dict(hidden_size=32, depth=2, num_heads=2),
        optim=OptimConfig(lr=1e-3, warmup_steps=2, batch_size=2, weight_decay=0.0),
        data=DataConfig(buckets=[[32, 32, 5], [48, 32, 5], [32, 32, 1, 4]], max_objects=2,
                        latent_cache_batches=4),
        steps=4, ema_decay=0.9, checkpoint_every=2, keep_checkpoints=2, log_every=1,
        pipeline=dict(size="32x32", seconds=0.75, fps=12.0, steps=4),
    )


# The shipped model's recipe. Clips at 12 fps, every size a multiple of 16, stills as 1-frame clips.
# The VAE learns on short clips (its causal convolutions make 9 frames generalise to 25+) and
# larger image batches; the DiT learns on 2-second clips of several aspect ratios plus stills.
_TINY_VAE_BUCKETS = [
    [128, 128, 9], [224, 128, 9], [128, 224, 9], [176, 96, 9], [96, 176, 9],
    [128, 128, 1, 16], [224, 128, 1, 16],
]
_TINY_DIT_BUCKETS = [
    [128, 128, 25], [224, 128, 25], [128, 224, 25], [176, 96, 25], [96, 176, 25],
    [128, 128, 1, 32], [224, 128, 1, 32],
]


def _tiny_vae() -> TrainConfig:
    return TrainConfig(
        stage="vae", preset="tiny",
        model=dict(base_channels=32, latent_channels=8),
        optim=OptimConfig(lr=5e-4, warmup_steps=500, batch_size=8, weight_decay=0.01, betas=[0.9, 0.99]),
        data=DataConfig(buckets=_TINY_VAE_BUCKETS, num_workers=2),
        steps=20_000, ema_decay=0.0, checkpoint_every=1000, keep_checkpoints=3, log_every=25,
        latent_stats_batches=16, motion_loss_weight=1.0, edge_loss_weight=0.5, object_loss_weight=0.3,
    )


def _tiny_dit() -> TrainConfig:
    return TrainConfig(
        stage="dit", preset="tiny",
        model=dict(hidden_size=256, depth=8, num_heads=4),
        optim=OptimConfig(lr=3e-4, warmup_steps=1000, batch_size=16, weight_decay=0.0, betas=[0.9, 0.99]),
        data=DataConfig(buckets=_TINY_DIT_BUCKETS, num_workers=2, latent_cache_batches=20_000),
        steps=50_000, ema_decay=0.999, checkpoint_every=2000, keep_checkpoints=3, log_every=25,
        pipeline=dict(size="128x128", seconds=2.0, fps=12.0, steps=20, guidance=5.0),
    )


_PRESETS = {("smoke", "vae"): _smoke_vae, ("smoke", "dit"): _smoke_dit,
            ("tiny", "vae"): _tiny_vae, ("tiny", "dit"): _tiny_dit}


# ----- overrides --------------------------------------------------------------------------------

def apply_overrides(cfg: Any, data: dict, where: str = "") -> Any:
    """Replace fields of dataclass `cfg` (in place) from nested dict `data`; unknown fields and
    wrong types raise KinemaError naming them. Dict fields (model, pipeline) are merged."""
    if not isinstance(data, dict):
        raise KinemaError(f"{where or 'config'}: expected a JSON object, got {type(data).__name__}")
    known = {f.name: f for f in fields(cfg)}
    unknown = sorted(k for k in data if k not in known)
    if unknown:
        prefix = f"{where}." if where else ""
        names = ", ".join(prefix + k for k in unknown)
        raise KinemaError(f"unknown config field{'s' if len(unknown) > 1 else ''} {names}; "
                          f"allowed{' in ' + where if where else ''}: {', '.join(sorted(known))}")
    for key, value in data.items():
        name = f"{where}.{key}" if where else key
        current = getattr(cfg, key)
        if is_dataclass(current):
            apply_overrides(current, value, name)
        elif isinstance(current, dict):
            if not isinstance(value, dict):
                raise KinemaError(f"config field {name}: expected an object, got {json.dumps(value)}")
            current.update(copy.deepcopy(value))
        else:
            setattr(cfg, key, _coerce(name, current, value))
    return cfg


def _coerce(name: str, current: Any, value: Any) -> Any:
    def bad(kind: str):
        return KinemaError(f"config field {name}: expected {kind}, got {json.dumps(value)}")

    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if isinstance(current, str):
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if isinstance(current, list):
        if not isinstance(value, list):
            raise bad("a list")
        return copy.deepcopy(value)
    return value


def load_config_file(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KinemaError(f"{path}: no such config file") from None
    except OSError as exc:
        raise KinemaError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KinemaError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(data, dict):
        raise KinemaError(f"{path}: expected a JSON object of config fields")
    return data


def resolve(stage: str, preset_name: str | None = None, config_file: str | None = None,
            overrides: dict | None = None) -> TrainConfig:
    """Preset -> config file -> flags. The file may name its own `preset` (the flag wins)."""
    file_data = load_config_file(config_file) if config_file else {}
    if "stage" in file_data and file_data["stage"] != stage:
        raise KinemaError(f"{config_file}: is a config for stage {file_data['stage']!r}, not {stage!r}")
    name = preset_name or file_data.get("preset") or "tiny"
    cfg = preset(name, stage)
    file_data = {k: v for k, v in file_data.items() if k not in ("stage", "preset")}
    if file_data:
        try:
            apply_overrides(cfg, file_data)
        except KinemaError as exc:
            raise KinemaError(f"{config_file}: {exc}") from None
    if overrides:
        apply_overrides(cfg, overrides)
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> TrainConfig:
    from ..data.buckets import parse_buckets

    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise KinemaError(f"config field {msg}")

    need(cfg.steps >= 1, f"steps: must be at least 1, got {cfg.steps}")
    need(cfg.time_limit_s >= 0, f"time_limit_s: must be 0 (none) or a positive number of seconds, "
                                f"got {cfg.time_limit_s:g}")
    need(cfg.optim.lr > 0, f"optim.lr: must be positive, got {cfg.optim.lr}")
    need(cfg.optim.warmup_steps >= 0, "optim.warmup_steps: must be >= 0")
    need(cfg.optim.batch_size >= 1, "optim.batch_size: must be at least 1")
    need(cfg.optim.grad_accum >= 1, "optim.grad_accum: must be at least 1")
    need(0 <= cfg.optim.min_lr_ratio <= 1, "optim.min_lr_ratio: must be from 0 to 1")
    need(len(cfg.optim.betas) == 2 and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in cfg.optim.betas),
         "optim.betas: must be two numbers in [0, 1)")
    need(cfg.checkpoint_every >= 1, "checkpoint_every: must be at least 1")
    need(cfg.keep_checkpoints >= 1, "keep_checkpoints: must be at least 1")
    need(cfg.log_every >= 1, "log_every: must be at least 1")
    need(0 <= cfg.ema_decay < 1, "ema_decay: must be in [0, 1)")
    need(0 <= cfg.caption_dropout <= 1, "caption_dropout: must be from 0 to 1")
    need(cfg.precision in ("auto", "bf16", "fp32"), f"precision: unknown value {cfg.precision!r}; allowed: auto, bf16, fp32")
    need(cfg.parallel in ("ddp", "fsdp"), f"parallel: unknown value {cfg.parallel!r}; allowed: ddp, fsdp")
    need(cfg.data.num_workers >= 0, "data.num_workers: must be >= 0")
    need(cfg.data.fps > 0, "data.fps: must be positive")
    need(1 <= cfg.data.max_objects <= 3, "data.max_objects: must be from 1 to 3")
    from ..world.sample import (check_group_probability, check_weights_scope, count_probabilities,
                                shape_probabilities, size_probabilities)
    from ..world.spec import SpecError

    for name, check in (("object_weights", lambda w: count_probabilities(w, cfg.data.max_objects)),
                        ("size_weights", size_probabilities), ("shape_weights", shape_probabilities),
                        ("group_probability", check_group_probability),
                        ("weights_scope", check_weights_scope)):
        if getattr(cfg.data, name) not in (None, []):  # an empty list is the default mix; all else is checked
            try:
                check(getattr(cfg.data, name))
            except SpecError as exc:
                raise KinemaError(f"data.{name}: {exc}") from None
    need(isinstance(cfg.data.relation_captions, bool), "data.relation_captions: must be true or false")
    need(cfg.data.relation_captions or cfg.data.source == "world",
         "data.relation_captions: only the world's captions can leave out relations; a folder's are its own")
    if cfg.data.mirror_pairs:
        need(cfg.data.source == "world", "data.mirror_pairs: only the world's scenes can be mirrored")
        need(cfg.stage == "dit", "data.mirror_pairs: pairs are for the transformer stage (stage \"dit\")")
        sizes = [cfg.optim.batch_size] + [b[3] for b in cfg.data.buckets
                                          if isinstance(b, (list, tuple)) and len(b) > 3]
        need(all(isinstance(n, int) and n % 2 == 0 for n in sizes),
             f"data.mirror_pairs: every batch size must be even (a scene and its mirror), got {sizes}")
    if cfg.data.window_of_frames:
        need(isinstance(cfg.data.window_of_frames, int) and cfg.data.window_of_frames >= 2,
             f"data.window_of_frames: must be an integer of at least 2 frames (0 = off), got {cfg.data.window_of_frames!r}")
        need(cfg.data.source == "world", "data.window_of_frames: cuts windows of the world's scenes; a folder's clips are its own")
        need(cfg.stage == "vae", "data.window_of_frames: a window's caption and layout are its whole scene's, so it is "
             "for the autoencoder stage (stage \"vae\"), which reads frames only")
    need(cfg.pair_loss_weight >= 0, "pair_loss_weight: must be >= 0")
    need(cfg.pair_loss_weight == 0 or cfg.data.mirror_pairs,
         "pair_loss_weight: needs data.mirror_pairs (the batches must hold pairs)")
    need(cfg.data.latent_cache_batches >= 1, "data.latent_cache_batches: must be at least 1")
    need(cfg.latent_stats_batches >= 1, "latent_stats_batches: must be at least 1")
    need(cfg.kl_weight >= 0, "kl_weight: must be >= 0")
    need(cfg.motion_loss_weight >= 0, "motion_loss_weight: must be >= 0")
    need(cfg.edge_loss_weight >= 0, "edge_loss_weight: must be >= 0")
    need(cfg.object_loss_weight >= 0, "object_loss_weight: must be >= 0")
    need(cfg.stage != "dit" or cfg.object_loss_weight == 0 or cfg.data.source == "world",
         "object_loss_weight: the transformer's object loss finds objects against the world's flat "
         "backgrounds, so it needs data.source \"world\"; set it to 0 for a folder of clips")
    need(not cfg.object_loss_balance or cfg.object_loss_weight > 0,
         "object_loss_balance: it weighs the object term, so it needs object_loss_weight > 0")
    need(math.isfinite(cfg.shape_loss_weight) and cfg.shape_loss_weight >= 0, "shape_loss_weight: must be a finite number >= 0")
    need(cfg.shape_loss_weight == 0 or (cfg.stage == "vae" and cfg.data.source == "world"),
         "shape_loss_weight: the shape critic reads each object where the scene's spec puts it, so it needs "
         "stage \"vae\" and data.source \"world\"")
    need(isinstance(cfg.shape_critic_steps, int) and cfg.shape_critic_steps >= 1, "shape_critic_steps: must be at least 1")
    need(math.isfinite(cfg.grounding_loss_weight) and cfg.grounding_loss_weight >= 0,
         "grounding_loss_weight: must be a finite number >= 0")
    need(cfg.grounding_loss_weight == 0 or (cfg.stage == "dit" and cfg.data.source == "world"),
         "grounding_loss_weight: the grounding loss needs each scene's spec to know where the named objects "
         "are, so it needs stage \"dit\" and data.source \"world\"")
    need(math.isfinite(cfg.layout_dropout) and 0 <= cfg.layout_dropout <= 1, "layout_dropout: must be from 0 to 1")
    need(math.isfinite(cfg.layout_caption_dropout) and 0 <= cfg.layout_caption_dropout <= 1,
         "layout_caption_dropout: must be from 0 to 1")
    if cfg.stage == "dit" and cfg.model.get("layout_channels"):
        from ..layout import outline_side

        outline_side(cfg.model["layout_channels"])  # names the counts a layout can have
    need(cfg.guidance_distill >= 0, "guidance_distill: must be >= 0")
    need(math.isfinite(cfg.timestep_shift) and cfg.timestep_shift >= 0,
         "timestep_shift: must be a finite number >= 0 (0 = shift by token count)")
    need(cfg.guidance_distill == 0 or cfg.stage != "dit" or bool(cfg.init),
         "guidance_distill: distillation learns from a teacher, so it needs `init` weights")
    need(cfg.vae_trainable in ("all", "decoder"),
         f"vae_trainable: unknown value {cfg.vae_trainable!r}; allowed: all, decoder")
    need(cfg.vae_trainable == "all" or cfg.stage != "vae" or bool(cfg.init),
         "vae_trainable: \"decoder\" keeps the encoder, so it needs `init` weights to keep")
    need(cfg.decoder_latents in ("encoded", "regenerated"),
         f"decoder_latents: unknown value {cfg.decoder_latents!r}; allowed: encoded, regenerated")
    if cfg.decoder_latents == "regenerated":
        need(cfg.stage == "vae" and cfg.vae_trainable == "decoder",
             "decoder_latents: \"regenerated\" trains the decoder on a transformer's latents, which fit only "
             "the encoder it was trained on: it needs stage \"vae\" with vae_trainable \"decoder\"")
        need(bool(cfg.regenerate_from or cfg.init),
             "decoder_latents: \"regenerated\" needs a trained pipeline: set regenerate_from (or init)")
        times = cfg.regenerate_times
        need(isinstance(times, (list, tuple)) and len(times) == 2
             and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in times)
             and 0 < times[0] <= times[1] <= 1,
             f"regenerate_times: must be [lo, hi] with 0 < lo <= hi <= 1 (1 = pure noise), got {times!r}")
        need(isinstance(cfg.regenerate_share, (int, float)) and math.isfinite(cfg.regenerate_share)
             and 0 < cfg.regenerate_share <= 1,
             f"regenerate_share: must be above 0 and at most 1, got {cfg.regenerate_share!r}")
    parse_buckets(cfg.data.buckets)
    if cfg.pipeline:
        from ..pipeline import DEFAULT_CONFIG

        unknown = sorted(k for k in cfg.pipeline if k not in DEFAULT_CONFIG)
        need(not unknown, f"pipeline.{unknown[0] if unknown else ''}: unknown pipeline setting; "
                          f"allowed: {', '.join(DEFAULT_CONFIG)}")
    return cfg
