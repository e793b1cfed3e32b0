"""The trainer for both stages: the autoencoder (`vae`) and the diffusion transformer (`dit`).

One code path for one process and for `torchrun` (DDP, or FSDP with `parallel: "fsdp"`):

    vae: x -> VAE.loss(x) (MSE + L1 + small KL); PSNR logged; per-channel latent mean/std
         measured at the end and stored in the exported config (OUT/final/).
    dit: x -> frozen VAE.encode -> latents; captions dropped to "" at `caption_dropout`; frozen
         text encoder; random frame-conditioning masks (every prompting mode); rectified-flow
         loss; EMA of the weights; OUT/final/ = a whole pipeline folder with the EMA weights,
         rewritten at every checkpoint.

Exact resume: the checkpoint holds weights, EMA, optimiser state, every RNG (torch, CUDA,
numpy, python and the trainer's own generator), the metrics window and the data position; the
data streams are pure functions of (seed, rank, index), so a resumed run reproduces the
uninterrupted one. The learning rate is a pure function of the step (linear warm-up, cosine).
SIGTERM or SIGINT during the steps (`stop.StopRequest`) ends a run after the step it is in, as its
time limit would: a checkpoint (a transformer's export is rewritten with it; an autoencoder exports
only when its run ends), exit status 0; `--resume` continues it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn as nn

from ..allocator import keep_freed_memory
from ..cpu_features import BF16_EMULATED, cpu_has_native_bf16
from ..errors import KinemaError
from . import checkpoint as ckpt
from . import components as comp
from . import distributed as D
from .config import TrainConfig
from .ema import EMA
from .stop import StopRequest

# Fields a resumed run may change: they set how long it runs and how it records, not what it learns
# from; a changed step count or time limit moves the rest of the cosine accordingly.
RESUMABLE_CHANGES = {"steps", "time_limit_s", "checkpoint_every", "keep_checkpoints", "log_every", "out",
                     "data.num_workers", "data.cache_clips"}
# Steps in a row whose gradients are NaN or inf before a run gives up.
MAX_BAD_STEPS = 5
# Clips the frozen autoencoder encodes at once: a batch of 256 clips of 224x128x25 makes its first
# activation about 6e9 elements, past the 2**31 that some GPU convolution kernels can index.
ENCODE_CHUNK = 32


def lr_at(cfg: TrainConfig, step: int, elapsed: float | None = None) -> float:
    """Learning rate for optimiser step `step` (0-based): linear warm-up, then cosine to min_lr_ratio.
    With a time limit, the cosine follows whichever of step/steps and elapsed/time_limit_s is further."""
    o = cfg.optim
    if o.warmup_steps > 0 and step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    span = max(1, cfg.steps - o.warmup_steps)
    progress = min(1.0, max(0.0, (step - o.warmup_steps) / span))
    if cfg.time_limit_s > 0 and elapsed is not None:
        progress = max(progress, min(1.0, elapsed / cfg.time_limit_s))
    return o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k not in ("model", "pipeline"):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def _video_on(video: torch.Tensor, device) -> torch.Tensor:
    """A batch of clips on the device as float in [-1, 1]; the world stream sends uint8 (4x less to copy)."""
    video = video.to(device, non_blocking=True)
    if video.dtype == torch.uint8:
        video = video.float() / 127.5 - 1.0
    return video


def _normalise_batch(batch: dict) -> dict:
    if "video" in batch and batch["video"].dim() == 4:
        batch = dict(batch, video=batch["video"].unsqueeze(0), caption=[batch["caption"]])
        if "spec" in batch:
            batch["spec"] = [batch["spec"]]
    return batch


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: bool = False, quiet: bool = False):
        if not cfg.out:
            raise KinemaError("no output folder: pass --out DIR (or set \"out\" in the config)")
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.resume = resume
        self.quiet = quiet
        keep_freed_memory()
        self.info = D.init()
        self.device = self.info.device
        self.amp_dtype = None
        if cfg.precision == "bf16" or (cfg.precision == "auto" and self.device.type == "cuda"):
            self.amp_dtype = torch.bfloat16
        if self.amp_dtype == torch.bfloat16 and self.device.type == "cpu" and not cpu_has_native_bf16():
            raise KinemaError(f"precision bf16: {BF16_EMULATED}; set \"precision\": \"fp32\" (or \"auto\")")
        self.step = 0
        self.position = 0  # batches this process has consumed
        self.elapsed_before = 0.0
        self.window = {"loss": 0.0, "steps": 0, "samples": 0}
        self._wsums: dict[str, torch.Tensor] = {}  # "loss" and its terms summed over the log window, on the device
        self.ema: EMA | None = None
        self.teacher: nn.Module | None = None  # guidance distillation
        self.foreground = None  # dit object loss: latents -> where the objects are
        self.regenerator = None  # vae decoder_latents "regenerated": a pipeline's transformer remaking latents
        self.bad_steps = 0  # steps in a row skipped for non-finite gradients
        self.pbar = None
        self.metrics_path = self.out / "metrics.jsonl"

    # ----- helpers --------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        if self.info.is_main and not self.quiet:
            if self.pbar is not None:
                self.pbar.write(msg, file=sys.stderr)
            else:
                print(msg, file=sys.stderr, flush=True)

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def write_metrics(self, record: dict) -> None:
        if self.info.is_main:
            with open(self.metrics_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    # ----- set-up ---------------------------------------------------------------------------
    def _check_out(self) -> Path | None:
        found = ckpt.list_checkpoints(self.out)
        if found and not self.resume:
            raise KinemaError(f"{self.out} already holds checkpoints (latest: step {found[-1][0]}); "
                              "pass --resume to continue that run, or choose another --out")
        latest = found[-1][1] if found else None
        if latest is not None:
            saved = ckpt.read_json(latest / ckpt.STATE_FILE).get("config", {})
            now, before = _flatten(self.cfg.to_dict()), _flatten(saved)
            # a field added to the config since the run began: the run had its default (the feature off)
            defaults = _flatten(TrainConfig().to_dict())
            before.update({k: defaults[k] for k in now if k not in before and k in defaults})
            diff = sorted(k for k in set(now) | set(before)
                          if k not in RESUMABLE_CHANGES and now.get(k) != before.get(k))
            if diff:
                k = diff[0]
                raise KinemaError(f"--resume: config field {k} differs from the run in {self.out} "
                                  f"(was {json.dumps(before.get(k))}, now {json.dumps(now.get(k))})"
                                  + (f" and {len(diff) - 1} more" if len(diff) > 1 else ""))
        return latest

    def _seed_process(self) -> None:
        r = self.info.rank
        torch.manual_seed(self.cfg.seed * 1000 + 17 + r)
        np.random.seed((self.cfg.seed * 1000 + 17 + r) % 2**32)
        random.seed(self.cfg.seed * 1000 + 17 + r)
        self.gen = torch.Generator().manual_seed(self.cfg.seed * 7919 + 101 + r)

    def _build(self) -> None:
        cfg, dev = self.cfg, self.device
        torch.manual_seed(cfg.seed)  # the same initial weights in every process
        if cfg.stage == "vae":
            self.vae = comp.build_vae(cfg.model)
            self.raw = comp.VAETrainModule(self.vae, kl_weight=cfg.kl_weight, motion_weight=cfg.motion_loss_weight,
                                           edge_weight=cfg.edge_loss_weight,
                                           object_weight=cfg.object_loss_weight,
                                           object_balance=cfg.object_loss_balance,
                                           shape_weight=cfg.shape_loss_weight).to(dev)
            self.critic = self._shape_critic() if cfg.shape_loss_weight > 0 else None
        else:
            if cfg.vae:
                self.vae_cpu = comp.load_vae(cfg.vae)
            elif cfg.preset == "smoke":
                from .config import preset

                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(cfg.seed + 4242)
                    self.vae_cpu = comp.build_vae(preset("smoke", "vae").model)
                self.log("kinema train: no --vae given: using a random VAE (smoke preset only)")
            else:
                raise KinemaError("dit training needs --vae DIR: the OUT/final folder of `kinema train vae`")
            self.vae_cpu.eval().requires_grad_(False)
            self.vae = copy.deepcopy(self.vae_cpu).to(dev)
            self.text = comp.load_text_encoder(cfg.text_encoder, cfg.text_max_length)
            if hasattr(self.text, "to"):
                self.text = self.text.to(dev)
            if hasattr(self.text, "eval"):
                self.text.eval()
            tdim = comp.text_dim_of(self.text)
            self.dit_cfg = comp.dit_config(cfg.model, self.vae_cpu.config.latent_channels, tdim)
            if cfg.object_loss_weight > 0:
                self.foreground = self._latent_foreground()
            torch.manual_seed(cfg.seed)
            self.raw = comp.build_dit(self.dit_cfg).to(dev)
        if cfg.init:  # a checkpoint, when resuming, replaces these weights right after
            target = self.vae if cfg.stage == "vae" else self.raw
            loaded = comp.init_component(cfg.stage, cfg.init, target)
            # strict=False: init_component has checked that only layers that start as a no-op are absent
            target.load_state_dict(loaded.state_dict(), strict=False)
            self.log(f"kinema train: starting from the weights in {cfg.init}")
            if cfg.stage == "vae" and cfg.vae_trainable == "decoder":
                # The encoder stays as it is, so its latents keep their statistics: a transformer
                # trained on them still fits the new decoder.
                self.vae.encoder.requires_grad_(False)
                self.vae.set_latent_stats(loaded.config.latent_mean, loaded.config.latent_std)
                self.log("kinema train: training the decoder only (encoder and latent statistics kept)")
        if cfg.stage == "vae" and cfg.decoder_latents == "regenerated":
            from .regenerate import Regenerator

            source = cfg.regenerate_from or cfg.init
            self.regenerator = Regenerator(source, self.vae, tuple(cfg.regenerate_times), cfg.regenerate_share, dev)
            self.log(f"kinema train: the decoder learns the latents {source}'s transformer draws "
                     f"({self.regenerator.description})")
        if cfg.stage == "dit" and cfg.guidance_distill > 0:
            # the teacher: the init weights, frozen; the student starts as a copy of it
            self.teacher = copy.deepcopy(self.raw).eval().requires_grad_(False)
            with torch.no_grad():  # the teacher's unconditional text, the same at every step
                u_states, u_mask = self.text.encode([""])
            self.uncond_text = (u_states.to(dev).float(), u_mask.to(dev))
            self.log(f"kinema train: distilling guidance {cfg.guidance_distill:g} into one forward per step")
        if cfg.ema_decay > 0:
            self.ema = EMA(self.raw, cfg.ema_decay)
        if cfg.compile:
            self.raw.compile()
        self.model = D.wrap(self.raw, self.info, cfg.parallel)
        if self.ema is not None and self.info.enabled and cfg.parallel == "fsdp":
            D.wrap(self.ema.model, self.info, "fsdp")
        o = cfg.optim
        kwargs = {"fused": True} if dev.type == "cuda" and cfg.parallel == "ddp" else {}
        self.opt = torch.optim.AdamW(_param_groups(self.model, o.weight_decay), lr=o.lr, betas=tuple(o.betas),
                                     eps=o.eps, **kwargs)
        n = sum(p.numel() for p in self.raw.parameters())
        self.log(f"kinema train {cfg.stage}: preset {cfg.preset}, {n / 1e6:.2f}M parameters, "
                 f"{self.info.world_size} process(es) on {dev.type}"
                 + (f", {cfg.parallel}" if self.info.enabled else "")
                 + (", bf16 autocast" if self.amp_dtype else ""))

    def _encode_latents(self, video: torch.Tensor) -> torch.Tensor:
        """Clips (uint8 or float in [-1, 1]) -> the frozen autoencoder's float32 latents, on the device."""
        with torch.no_grad(), self.autocast():
            return torch.cat([self.vae.encode(_video_on(part, self.device)).float()
                              for part in video.split(ENCODE_CHUNK)])

    def _shape_critic(self):
        """The frozen shape critic of `shape_loss_weight`: OUT/shape_critic.safetensors when a run
        already trained it (resume), else trained now on ground-truth crops of the run's buckets."""
        from ..data.buckets import parse_buckets
        from .checkpoint import load_tensors, save_tensors
        from .shape_critic import ShapeCritic, train_critic, world_batches

        cfg, path = self.cfg, self.out / "shape_critic.safetensors"
        if path.is_file():
            critic = ShapeCritic()
            critic.load_state_dict(load_tensors(path))
            critic.eval().requires_grad_(False)
            self.log(f"kinema train: shape critic from {path}")
            return critic.to(self.device)
        d = cfg.data
        # the run's clip shapes, at most 8 clips a batch: ground-truth crops are cheap to learn from
        buckets = []
        for b in parse_buckets(d.buckets):
            w, h, t, *size = b.as_tuple()
            buckets.append((w, h, t, min(size[0] if size else cfg.optim.batch_size, 8)))
        batches = world_batches(cfg.seed + 7, buckets, window_of_frames=d.window_of_frames or None,
                                shape_weights=d.shape_weights or None, size_weights=d.size_weights or None)
        with torch.random.fork_rng(devices=[]):
            critic, accuracy = train_critic(batches, steps=cfg.shape_critic_steps, seed=cfg.seed, log=self.log)
        self.log(f"kinema train: shape critic names {accuracy:.1%} of ground-truth object crops it never trained on")
        if accuracy < 0.95:
            raise KinemaError(f"shape_critic_steps: the shape critic names only {accuracy:.1%} of ground-truth crops "
                              "after training; a critic that cannot read true shapes would teach the decoder noise "
                              "(raise shape_critic_steps)")
        if self.info.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            save_tensors(path, critic.state_dict())
        return critic.to(self.device)

    def _latent_foreground(self):
        from ..world.spec import BACKGROUNDS
        from .latent_foreground import LatentForeground

        vc = self.vae_cpu.config
        return LatentForeground(self._encode_latents, BACKGROUNDS.values(), vc.spatial_downsample,
                                vc.temporal_downsample)

    # ----- data -----------------------------------------------------------------------------
    def _stream(self, seed: int, start: int):
        from ..data.buckets import parse_buckets

        cfg, d = self.cfg, self.cfg.data
        buckets = [b.as_tuple() for b in parse_buckets(d.buckets)]
        if d.source == "world":
            from ..data.world_stream import WorldStream

            # The train split only: the benchmark's held-out combinations never appear.
            return WorldStream(split="train", seed=seed, buckets=buckets, fps=d.fps, batch_size=cfg.optim.batch_size,
                               rank=self.info.rank, world_size=self.info.world_size, max_objects=d.max_objects,
                               start_index=start, interleave_workers=True, uint8=True,
                               count_weights=d.object_weights, size_weights=d.size_weights,
                               shape_weights=d.shape_weights,
                               relation_captions=d.relation_captions, mirror_pairs=d.mirror_pairs,
                               group_probability=d.group_probability, weights_scope=d.weights_scope,
                               window_of_frames=d.window_of_frames or None)
        from ..data.folder import FolderStream

        return FolderStream(d.source, buckets, batch_size=cfg.optim.batch_size, fps=d.fps, seed=seed,
                            rank=self.info.rank, start_index=start, cache_clips=d.cache_clips)

    def _loader(self, dataset) -> Iterator[dict]:
        from torch.utils.data import DataLoader

        nw = self.cfg.data.num_workers
        loader = DataLoader(dataset, batch_size=None, num_workers=nw, pin_memory=self.device.type == "cuda",
                            prefetch_factor=4 if nw else None, persistent_workers=False)
        for batch in loader:
            yield _normalise_batch(batch)

    def _latent_cache(self):
        from ..data import latent_cache as lc

        cfg = self.cfg
        root = Path(cfg.data.latent_cache_dir) if cfg.data.latent_cache_dir else self.out / "latent_cache"
        key = {"source": os.path.abspath(cfg.data.source) if cfg.data.source != "world" else "world",
               "buckets": cfg.data.buckets, "batch_size": cfg.optim.batch_size, "fps": cfg.data.fps,
               "max_objects": cfg.data.max_objects, "seed": cfg.seed, "batches": cfg.data.latent_cache_batches,
               "vae": lc.fingerprint_module(self.vae_cpu)}
        # only when set, so caches built before these fields existed still match
        for name in ("object_weights", "size_weights", "shape_weights"):
            if getattr(cfg.data, name):
                key[name] = list(getattr(cfg.data, name))
        if cfg.data.group_probability:
            key["group_probability"] = cfg.data.group_probability
        if cfg.data.weights_scope != "all":
            key["weights_scope"] = cfg.data.weights_scope
        if not cfg.data.relation_captions:
            key["relation_captions"] = False
        if cfg.data.mirror_pairs:
            key["mirror_pairs"] = True
        if cfg.grounding_loss_weight > 0 or self._uses_layout():  # they read the scene specs kept with the latents
            key["specs"] = True
        differs = lc.difference(root, key) if self.info.is_main else None
        differs = D.broadcast_object(self.info, differs)
        if differs and cfg.data.latent_cache_dir:
            raise KinemaError(
                f"data.latent_cache_dir: {root} holds a latent cache built for other settings "
                f"({differs}); other runs may use it, so it is not overwritten: "
                "match those settings, or name a new folder")
        if differs != "":  # no complete cache, or the run's own one built for other settings
            if self.info.is_main:
                kept = lc.start_build(root, key, self.info.world_size)
                self.log(f"kinema train: encoding {cfg.data.latent_cache_batches} batches into the latent cache {root}"
                         + (f" ({kept} of them kept from an interrupted build)" if kept else ""))
            D.barrier(self.info)
            items = self._loader(self._stream(cfg.seed, 0))
            shards = lc.build_shards(root, self.info.rank, self.info.world_size, cfg.data.latent_cache_batches,
                                     items, self._encode_latents)
            all_shards = D.all_gather_objects(self.info, shards)
            if self.info.is_main:
                lc.write_manifest(root, key, [s for part in all_shards for s in part], cfg.data.latent_cache_batches)
            D.barrier(self.info)
        return lc.LatentCache(root, seed=cfg.seed)

    def _batches(self) -> Iterator[dict]:
        """This process's training batches from its current position on."""
        if self.cfg.stage == "dit" and self.cfg.data.latent_cache:
            cache = self._latent_cache()
            while True:
                yield cache.batch(self.info.rank, self.info.world_size, self.position)
        else:
            self.dataset.start_index = self.position
            yield from self._loader(self.dataset)

    def _object_boxes(self, batch: dict, shape: torch.Size, max_crops: int = 512) -> torch.Tensor:
        """The shape critic's crops of this batch (`shape_critic.object_boxes`), at most `max_crops`."""
        from .shape_critic import object_boxes

        boxes = object_boxes(batch["spec"], shape[2], shape[4], shape[3])
        if len(boxes) > max_crops:
            boxes = boxes[torch.randperm(len(boxes), generator=self.gen)[:max_crops].sort().values]
        return boxes

    # ----- one step -------------------------------------------------------------------------
    def _loss(self, batch: dict) -> tuple[torch.Tensor, int, dict[str, torch.Tensor]]:
        """This batch's loss, its size, and the loss's terms to log apart (the DiT's flow and object
        terms when it has the object term; else none)."""
        dev = self.device
        if self.cfg.stage == "vae":
            x = _video_on(batch["video"], dev)
            boxes = self._object_boxes(batch, x.shape) if self.critic is not None else None
            latents = None
            if self.regenerator is not None:
                with torch.no_grad():
                    mean, logvar = self.vae.posterior(x)
                latents = self.regenerator(batch, mean.float(), logvar.float(), self.gen)
            with self.autocast():
                loss = self.model(x, "loss", critic=self.critic, boxes=boxes, latents=latents)
            self._last_x = x
            shape = self.raw.last_shape_loss
            return loss.float(), x.shape[0], ({"shape_loss": shape} if shape is not None else {})
        from ..diffusion.flow import flow_matching_loss_terms, random_condition_mask

        if "latents" in batch:
            z = batch["latents"].to(dev, non_blocking=True).float()
        else:
            z = self._encode_latents(batch["video"])
        captions = list(batch["caption"])
        b = z.shape[0]
        # mirror pairs: a scene and its mirror share every random draw, so their losses differ only
        # by what the words and the mirrored clip change
        pairs = self.cfg.data.mirror_pairs
        if pairs and b % 2:
            raise KinemaError(f"data.mirror_pairs: a batch of {b} clips holds no whole pairs")
        draws = b // 2 if pairs else b

        def paired(x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x, x]) if pairs else x

        drop = paired(torch.rand(draws, generator=self.gen) < self.cfg.caption_dropout)
        cond = paired(random_condition_mask(draws, z.shape[2], generator=self.gen))
        layout_kept = self._layout_kept(batch, drop, draws, paired)
        if layout_kept is not None and self.cfg.layout_caption_dropout > 0:
            blind = layout_kept & paired(torch.rand(draws, generator=self.gen) < self.cfg.layout_caption_dropout)
            drop = drop | blind
        captions = ["" if d else c for d, c in zip(drop.tolist(), captions)]
        with torch.no_grad():
            states, mask = self.text.encode(captions)
        states, mask = states.to(dev).float(), mask.to(dev)
        layout = self._layout(batch, layout_kept, z.shape) if layout_kept is not None else None
        target_fn = None
        if self.teacher is not None:
            from ..diffusion.sampling import guidance_text, guided_velocity

            u_states, u_mask = self.uncond_text
            both = guidance_text(states, mask, u_states.expand(b, -1, -1), u_mask.expand(b, -1))

            def target_fn(x_t, tt):
                return guided_velocity(self.teacher, x_t, tt, *both, self.cfg.guidance_distill, layout).float()
        grounding_fn = self._grounding_fn(batch, captions, z.shape) if self.cfg.grounding_loss_weight > 0 else None
        with self.autocast():
            terms = flow_matching_loss_terms(self.model, z, states, mask, cond_mask=cond, generator=self.gen,
                                             paired=pairs,
                                             target_fn=target_fn, foreground_fn=self.foreground,
                                             object_weight=self.cfg.object_loss_weight,
                                             object_balance=self.cfg.object_loss_balance,
                                             timestep_shift=self.cfg.timestep_shift or None,
                                             grounding_fn=grounding_fn,
                                             grounding_weight=self.cfg.grounding_loss_weight,
                                             pair_weight=self.cfg.pair_loss_weight, layout=layout)
        parts = {}
        if terms.object is not None or terms.grounding is not None or terms.pair is not None:
            parts["flow_loss"] = terms.flow.detach()
        if terms.pair is not None:
            parts["pair_loss"] = terms.pair.detach()
        if terms.object is not None:
            parts["object_loss"] = terms.object.detach()
        if terms.grounding is not None:
            parts["grounding_loss"] = terms.grounding.detach()
        return terms.total.float(), b, parts

    def _uses_layout(self) -> bool:
        return self.cfg.stage == "dit" and bool(getattr(self.dit_cfg, "layout_channels", 0))

    def _layout_kept(self, batch: dict, dropped: torch.Tensor, draws: int,
                     paired: Callable) -> torch.Tensor | None:
        """Which clips are given their layout: not those whose caption was dropped, nor `layout_dropout`
        of the others. None when the model takes no layout or the clips carry no specs (a folder)."""
        if not self._uses_layout() or "spec" not in batch:
            return None
        return ~dropped & paired(torch.rand(draws, generator=self.gen) >= self.cfg.layout_dropout)

    def _layout(self, batch: dict, kept: torch.Tensor, latent_shape) -> torch.Tensor:
        """The batch's scene layouts [B, K, t, h, w] on the device; clips not `kept` get none (zeros)."""
        from ..layout import layout_batch, outline_side
        from ..world.spec import SceneSpec

        _, _, t, h, w = latent_shape
        specs = [SceneSpec.from_dict(s) if k else None for s, k in zip(batch["spec"], kept.tolist())]
        return layout_batch(specs, t, h, w, self.vae_cpu.config.temporal_downsample,
                            outline=outline_side(self.dit_cfg.layout_channels)).to(self.device)

    def _grounding_fn(self, batch: dict, captions: list[str], latent_shape) -> Callable:
        """maps -> the grounding loss of this batch (captions as given to the model, dropped ones empty)."""
        from ..world.spec import SceneSpec
        from .grounding import grounding_loss, grounding_targets

        if "spec" not in batch:
            raise KinemaError("grounding_loss_weight: these batches carry no scene specs (a latent cache built "
                              "before specs were kept with it?); delete the cache to rebuild it")
        specs = [SceneSpec.from_dict(s) for s in batch["spec"]]
        pt, ph, pw = self.dit_cfg.patch_size
        _, _, t, h, w = latent_shape
        targets, weights = grounding_targets(specs, captions, self.text.token_offsets(captions),
                                             (t // pt, h // ph, w // pw),
                                             self.vae_cpu.config.temporal_downsample, pt, self.cfg.text_max_length)
        targets, weights = targets.to(self.device), weights.to(self.device)
        return lambda maps: grounding_loss(maps, targets, weights)

    def _no_sync(self, last: bool):
        if last or not self.info.enabled:
            return contextlib.nullcontext()
        if hasattr(self.model, "no_sync"):
            return self.model.no_sync()
        if hasattr(self.model, "set_requires_gradient_sync"):
            @contextlib.contextmanager
            def fsdp_no_sync():
                self.model.set_requires_gradient_sync(False)
                try:
                    yield
                finally:
                    self.model.set_requires_gradient_sync(True)
            return fsdp_no_sync()
        return contextlib.nullcontext()

    # ----- checkpoints ----------------------------------------------------------------------
    def _sd_options(self):
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        return StateDictOptions(full_state_dict=True, cpu_offload=True)

    def save_checkpoint(self) -> None:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

        opts = self._sd_options()
        model_sd = get_model_state_dict(self.model, options=opts)
        ema_sd = get_model_state_dict(self.ema.model, options=opts) if self.ema is not None else None
        opt_sd = get_optimizer_state_dict(self.model, self.opt, options=opts)
        if self.info.is_main:
            tmp = ckpt.prepare_tmp(self.out, self.step)
        D.barrier(self.info)
        tmp = ckpt.tmp_dir(self.out, self.step)
        rng_t, rng_meta = ckpt.rng_state({"trainer": self.gen})
        r = self.info.rank
        ckpt.save_tensors(tmp / f"rng_rank{r}.safetensors", rng_t)
        ckpt.write_json(tmp / f"rng_rank{r}.json", rng_meta)
        if self.info.is_main:
            ckpt.save_tensors(tmp / "model.safetensors", model_sd)
            if ema_sd is not None:
                ckpt.save_tensors(tmp / "ema.safetensors", ema_sd)
            opt_t, opt_meta = ckpt.flatten_optimizer(opt_sd)
            ckpt.save_tensors(tmp / "optimizer.safetensors", opt_t)
            ckpt.write_json(tmp / "optimizer.json", opt_meta)
        window = D.all_gather_objects(self.info, dict(self.window, **{k: float(v) for k, v in self._wsums.items()}))
        D.barrier(self.info)
        if self.info.is_main:
            state = {
                "step": self.step, "position": self.position, "world_size": self.info.world_size,
                "elapsed": self.elapsed(), "ema_updates": self.ema.updates if self.ema else 0,
                "windows": window, "stage": self.cfg.stage, "config": self.cfg.to_dict(),
                "format": 1,
            }
            ckpt.write_json(tmp / ckpt.STATE_FILE, state)
            path = ckpt.commit(self.out, self.step, self.cfg.keep_checkpoints)
            self.log(f"kinema train: checkpoint {path}")
        D.barrier(self.info)
        if self.cfg.stage == "dit":
            self.export_dit(model_sd, ema_sd)

    def load_checkpoint(self, path: Path) -> None:
        from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                             set_optimizer_state_dict)

        state = ckpt.read_json(path / ckpt.STATE_FILE)
        opts = StateDictOptions(full_state_dict=True)
        set_model_state_dict(self.model, ckpt.load_tensors(path / "model.safetensors"), options=opts)
        if self.ema is not None:
            if (path / "ema.safetensors").is_file():
                set_model_state_dict(self.ema.model, ckpt.load_tensors(path / "ema.safetensors"), options=opts)
            self.ema.updates = int(state.get("ema_updates", 0))
        osd = ckpt.unflatten_optimizer(ckpt.load_tensors(path / "optimizer.safetensors"),
                                       ckpt.read_json(path / "optimizer.json"))
        set_optimizer_state_dict(self.model, self.opt, osd, options=opts)
        self.step = int(state["step"])
        self.position = int(state["position"])
        self.elapsed_before = float(state.get("elapsed", 0.0))
        r = self.info.rank
        same_world = int(state.get("world_size", 1)) == self.info.world_size
        rng_file = path / f"rng_rank{r}.safetensors"
        if same_world and rng_file.is_file():
            ckpt.set_rng_state(ckpt.load_tensors(rng_file), ckpt.read_json(path / f"rng_rank{r}.json"),
                               {"trainer": self.gen})
            windows = state.get("windows") or []
            if r < len(windows):
                self.window = dict(windows[r])
        else:
            self.log(f"kinema train: the checkpoint was written by {state.get('world_size')} process(es), "
                     f"this run has {self.info.world_size}: weights and optimiser resume exactly, "
                     "random streams restart from new seeds")
            self.gen.manual_seed(self.cfg.seed * 7919 + 101 + r + 1_000_003 * self.step)
        self.log(f"kinema train: resumed from {path} at step {self.step}")

    def _trim_metrics(self) -> None:
        """On resume, drop metric lines past the checkpoint (written by the interrupted run)."""
        if not self.info.is_main or not self.metrics_path.is_file():
            return
        keep = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if int(rec.get("step", 0)) <= self.step and "event" not in rec:
                keep.append(line)
        tmp = self.metrics_path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(k + "\n" for k in keep), encoding="utf-8")
        os.replace(tmp, self.metrics_path)

    # ----- exports --------------------------------------------------------------------------
    def export_dit(self, model_sd: dict, ema_sd: dict | None) -> None:
        if self.info.is_main:
            dit = comp.build_dit(self.dit_cfg)
            sd = ema_sd if ema_sd is not None else model_sd
            dit.load_state_dict(sd)
            dit.eval()
            text = self.text
            path = comp.export_pipeline(self.vae_cpu, dit, text, self._pipeline_config(), self.out / "final")
            self.log(f"kinema train: exported pipeline {path}")
        D.barrier(self.info)

    def _pipeline_config(self) -> dict:
        cfg = dict(self.cfg.pipeline)
        if self.cfg.guidance_distill > 0:  # guidance is in the weights now
            cfg.update(guidance=1.0, distilled_guidance=self.cfg.guidance_distill)
        return cfg

    def finish_vae(self) -> dict:
        """Per-channel latent mean/std over `latent_stats_batches` batches, then OUT/final."""
        cfg = self.cfg
        c = self.vae.config.latent_channels
        s = torch.zeros(c, dtype=torch.float64)
        sq = torch.zeros(c, dtype=torch.float64)
        n = torch.zeros(1, dtype=torch.float64)
        psnrs = []
        stream = self._loader(self._stream(cfg.seed + 99_991, 0))
        self.model.eval()
        with torch.no_grad():
            for _ in range(cfg.latent_stats_batches):
                x = _video_on(next(stream)["video"], self.device)
                with self.autocast():
                    raw = self.model(x, "raw").double()
                    recon = self.model(x, "recon").float()
                s += raw.sum(dim=(0, 2, 3, 4)).cpu()
                sq += raw.pow(2).sum(dim=(0, 2, 3, 4)).cpu()
                n += raw.numel() / c
                psnrs.append(_psnr(recon, x))
            # Evaluation only (no gradient, nothing learned): PSNR on the benchmark's held-out
            # combinations, the autoencoder's target in DESIGN §2.
            heldout = []
            if cfg.data.source == "world":
                from ..data.buckets import parse_buckets
                from ..data.world_stream import WorldStream

                ws = WorldStream(split="heldout", seed=cfg.seed + 77_777,
                                 buckets=[b.as_tuple() for b in parse_buckets(cfg.data.buckets)], fps=cfg.data.fps,
                                 batch_size=cfg.optim.batch_size, rank=self.info.rank, max_objects=cfg.data.max_objects)
                for i in range(cfg.latent_stats_batches):
                    x = _video_on(_normalise_batch(ws.item(i))["video"], self.device)
                    with self.autocast():
                        heldout.append(_psnr(self.model(x, "recon").float(), x))
        self.model.train()
        tot = D.all_sum_tensor(self.info, torch.cat([s, sq, n]).to(self.device)).cpu()
        s, sq, n = tot[:c], tot[c:2 * c], tot[2 * c]
        mean = s / n
        std = (sq / n - mean.pow(2)).clamp_min(1e-12).sqrt()
        psnr, psnr_heldout = D.all_mean(self.info, [float(np.mean(psnrs)), float(np.mean(heldout or [0.0]))])
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        full = get_model_state_dict(self.model, options=self._sd_options())
        result = {"event": "latent_stats", "step": self.step, "latent_mean": mean.tolist(),
                  "latent_std": std.tolist(), "psnr_eval": psnr}
        if heldout:
            result["psnr_heldout"] = psnr_heldout
        if self.info.is_main:
            vae = comp.build_vae(cfg.model)
            vae.load_state_dict({k[len("vae."):]: v for k, v in full.items() if k.startswith("vae.")})
            if cfg.vae_trainable == "decoder":
                vae.set_latent_stats(self.vae.config.latent_mean, self.vae.config.latent_std)
            else:
                vae.set_latent_stats(mean.float(), std.float())
            path = comp.export_vae(vae, self.out / "final")
            self.log(f"kinema train: latent mean {np.round(mean.numpy(), 3).tolist()}, "
                     f"std {np.round(std.numpy(), 3).tolist()}; PSNR {psnr:.2f} dB"
                     + (f" (held-out combinations {psnr_heldout:.2f} dB)" if heldout else "") + f"; exported {path}")
            self.write_metrics(result)
        D.barrier(self.info)
        return result

    # ----- the loop -------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.elapsed_before + (time.time() - self.t0)

    def run(self) -> dict:
        clean = False
        try:
            result = self._run()
            clean = True
            return result
        finally:
            if self.pbar is not None:
                self.pbar.close()
            D.shutdown(clean)

    def _run(self) -> dict:
        cfg = self.cfg
        latest = self._check_out()
        if self.info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(cfg.to_json(), encoding="utf-8")
        # Everything the user can get wrong is checked before the slow parts start.
        if cfg.stage == "vae":
            comp.vae_config(cfg.model)
        else:
            from ..models.dit import DiTConfig

            comp.check_model_fields(DiTConfig, cfg.model)
        self.dataset = None
        if not (cfg.stage == "dit" and cfg.data.latent_cache):
            self.dataset = self._stream(cfg.seed, 0)  # a folder's index is validated here
        self._build()
        self._seed_process()
        resumed_step = None
        if latest is not None:
            self.load_checkpoint(latest)
            resumed_step = self.step  # `latest` itself may be pruned by later checkpoints
            self._trim_metrics()
        elif self.resume:
            self.log(f"kinema train: no checkpoint in {self.out} yet: starting from step 0")
        elif self.info.is_main and self.metrics_path.exists():
            self.metrics_path.unlink()
        D.barrier(self.info)
        self.t0 = time.time()
        show = self.info.is_main and not self.quiet and sys.stderr.isatty()
        if show:
            from tqdm import tqdm

            self.pbar = tqdm(total=cfg.steps, initial=self.step, desc=f"train {cfg.stage}", unit="step",
                             dynamic_ncols=True)
        batches = self._batches() if self.step < cfg.steps else iter(())
        self._wsums = {k: torch.tensor(float(v), dtype=torch.float64, device=self.device)
                       for k, v in self.window.items() if k == "loss" or k.endswith("_loss")}
        self.model.train()
        with StopRequest(self._stop_requested) as stop_request:
            stopped_by, last_window = self._loop(batches, stop_request)
        result: dict[str, Any] = {"step": self.step, "out": str(self.out), **last_window}
        if stopped_by is not None:
            result["stopped_by"] = stopped_by
        if cfg.stage == "vae" and stopped_by is None:
            result.update(self.finish_vae())
        elif cfg.stage == "dit" and latest is not None and self.step == resumed_step:
            # resumed at the end: make sure the export exists
            if not (self.out / "final").exists():
                from torch.distributed.checkpoint.state_dict import get_model_state_dict

                opts = self._sd_options()
                self.export_dit(get_model_state_dict(self.model, options=opts),
                                get_model_state_dict(self.ema.model, options=opts) if self.ema else None)
        checks = D.all_gather_objects(self.info, comp.param_checksum(self.raw))
        done = {"event": "done", "step": self.step, "elapsed": self.elapsed(), "param_checksums": checks}
        if stopped_by is not None:
            done["stopped_by"] = stopped_by
        if self.info.enabled and cfg.parallel == "ddp" and max(checks) - min(checks) > 1e-6 * max(1.0, abs(checks[0])):
            raise RuntimeError(f"DDP processes disagree on the weights after training: {checks}")
        self.write_metrics(done)
        result["param_checksums"] = checks
        return result

    def _loop(self, batches: Iterator[dict], stop_request: StopRequest) -> tuple[str | None, dict]:
        """Train to `steps`, the time limit or a stop request. Returns what stopped it early (a
        signal's name, or None) and the last logged window's record."""
        cfg = self.cfg
        accum = cfg.optim.grad_accum
        last_window: dict = {}
        win_t = time.time()
        while self.step < cfg.steps:
            lr = lr_at(cfg, self.step, self.elapsed())
            for g in self.opt.param_groups:
                g["lr"] = lr
            samples, terms = 0, []
            for micro in range(accum):
                batch = next(batches)
                self.position += 1
                with self._no_sync(micro == accum - 1):
                    loss, n, parts = self._loss(batch)
                    (loss / accum).backward()
                terms.append({"loss": loss.detach(), **parts})
                samples += n
            # no clipping at grad_clip 0: the norm is still wanted, to refuse a non-finite step
            gn = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf"))
            if not self._gradients_finite(gn):
                continue
            for parts in terms:  # summed on the device: no host sync for these
                for k, v in parts.items():
                    self._wsums[k] = self._wsums.get(k, 0.0) + v.double() / accum
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            if self.ema is not None:
                self.ema.update(self.model if cfg.parallel == "fsdp" and self.info.enabled else self.raw)
            self.step += 1
            self.window["steps"] += 1
            self.window["samples"] += samples
            if self.pbar is not None:
                self.pbar.update(1)
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                if gn is not None:
                    gn = float(gn.full_tensor() if hasattr(gn, "full_tensor") else gn)
                last_window = self._log_window(lr, float("nan") if gn is None else gn, time.time() - win_t)
                win_t = time.time()
            check_time = cfg.time_limit_s > 0 and (self.step % cfg.log_every == 0 or self.info.world_size == 1)
            # every rank must stop at the same step: agree on it (a signal may reach one rank first;
            # one scalar all-reduce a step, beside the gradient check's host sync)
            time_up, stop = (v > 0 for v in D.all_mean(self.info, [
                float(check_time and self.elapsed() >= cfg.time_limit_s),
                float(stop_request.requested is not None)]))
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps or time_up or stop:
                t_ck = time.time()
                self.save_checkpoint()
                win_t += time.time() - t_ck  # samples/s counts training time only
                if os.environ.get("KINEMA_TRAIN_DIE_AFTER_CHECKPOINT") == str(self.step):
                    os._exit(137)  # tests: die like a killed job, right after this checkpoint
            if time_up:
                self.log(f"kinema train: time limit {cfg.time_limit_s:g} s reached at step {self.step}")
                return None, last_window
            if stop:
                by = stop_request.requested or "a signal to another process"
                self.log(f"kinema train: stopped by {by} at step {self.step}; "
                         "run it again with --resume to continue")
                return by, last_window
        return None, last_window

    def _stop_requested(self, name: str) -> None:
        self.log(f"kinema train: {name} received: stopping after this step, with a checkpoint")

    def _gradients_finite(self, grad_norm: torch.Tensor) -> bool:
        """False (and the gradients dropped, the weights left as they were) when a step's gradients
        hold NaN or inf; an error after MAX_BAD_STEPS such steps in a row, since a model that kept
        training on them would be NaN from then on. One host sync per step buys this."""
        norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
        if bool(torch.isfinite(norm)):  # every rank reduced the same gradients: they agree
            self.bad_steps = 0
            return True
        self.opt.zero_grad(set_to_none=True)
        self.bad_steps += 1
        self.log(f"kinema train: step {self.step + 1}: gradients not finite (NaN or inf); step skipped, "
                 "weights unchanged")
        if self.bad_steps >= MAX_BAD_STEPS:
            raise KinemaError(
                f"kinema train: the gradients were not finite at {self.bad_steps} steps in a row (from step "
                f"{self.step + 1}); the weights and the last checkpoint are as at step {self.step}. Lower "
                "optim.lr, or, under bf16 on a CPU (some PyTorch builds give non-finite bf16 3D-convolution "
                "gradients), set \"precision\": \"fp32\"")
        return False

    def _log_window(self, lr: float, grad_norm: float, seconds: float) -> dict:
        w = self.window
        steps = max(1, w["steps"])
        term_names = sorted(k for k in self._wsums if k != "loss")
        vals = [float(self._wsums["loss"]) / steps, float(w["samples"]), grad_norm]
        vals += [float(self._wsums[k]) / steps for k in term_names]
        psnr = None
        if self.cfg.stage == "vae":
            with torch.no_grad(), self.autocast():
                recon = self.model(self._last_x, "recon").float()
            vals.append(_psnr(recon, self._last_x))
        vals = D.all_mean(self.info, vals)
        samples = vals[1] * self.info.world_size
        record = {"step": self.step, "loss": vals[0], "lr": lr, "grad_norm": vals[2],
                  "samples_per_s": samples / max(seconds, 1e-9), "elapsed": round(self.elapsed(), 3)}
        record.update(zip(term_names, vals[3:3 + len(term_names)]))
        if self.cfg.stage == "vae":
            psnr = vals[-1]
            record["psnr"] = psnr
        self.write_metrics(record)
        msg = f"step {self.step}/{self.cfg.steps} loss {vals[0]:.4f} lr {lr:.2e} {record['samples_per_s']:.1f} samples/s"
        if term_names:
            msg += " (" + ", ".join(f"{k.removesuffix('_loss')} {record[k]:.4f}" for k in term_names) + ")"
        if psnr is not None:
            msg += f" psnr {psnr:.2f}"
        clock = ""
        if self.cfg.time_limit_s > 0:  # a timed run ends on the clock, usually long before its step count
            clock = f"{_minutes(record['elapsed'])} of {_minutes(self.cfg.time_limit_s)} min"
            msg += f", {clock}"
        if self.pbar is not None:
            self.pbar.set_postfix_str(f"loss {vals[0]:.4f}" + (f" psnr {psnr:.1f}" if psnr is not None else "")
                                      + (f" {clock}" if clock else ""))
        elif not self.quiet:
            self.log(msg)
        self.window = {"loss": 0.0, "steps": 0, "samples": 0}
        self._wsums = {}
        return record


def _psnr(recon: torch.Tensor, x: torch.Tensor) -> float:
    """PSNR in dB of a reconstruction of x, both in [-1, 1]."""
    mse = ((recon.float().clamp(-1, 1) - x.float()) / 2).pow(2).mean().item()
    return 10 * math.log10(1.0 / max(mse, 1e-10))


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}" if seconds < 600 else f"{seconds / 60:.0f}"


def train(cfg: TrainConfig, resume: bool = False, quiet: bool = False) -> dict:
    return Trainer(cfg, resume=resume, quiet=quiet).run()
