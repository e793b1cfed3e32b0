"""The models the trainer builds, loads and exports, behind a few small functions."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import KinemaError
from ..files import give_usual_permissions

VAE_WEIGHTS = "diffusion_pytorch_model.safetensors"
CONFIG_NAME = "config.json"


def check_model_fields(config_cls, model: dict) -> None:
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(k for k in model if k not in known)
    if unknown:
        names = ", ".join(f"model.{k}" for k in unknown)
        raise KinemaError(f"unknown config field{'s' if len(unknown) > 1 else ''} {names}; "
                          f"allowed in model ({config_cls.__name__}): {', '.join(sorted(known))}")


# ----- the autoencoder --------------------------------------------------------------------------

def vae_config(model: dict):
    from ..models.vae import VAEConfig

    check_model_fields(VAEConfig, model)
    return VAEConfig.from_dict(dict(model))


def build_vae(model: dict):
    from ..models.vae import CausalVideoVAE

    return CausalVideoVAE(vae_config(model))


def load_vae(path: str | os.PathLike):
    """A VAE from an export folder (OUT/final of a vae run, or a pipeline folder / its vae/)."""
    from ..models.vae import CausalVideoVAE, VAEConfig
    from ..pipeline import _load_component

    path = Path(path).expanduser()
    if (path / "vae" / CONFIG_NAME).is_file():  # a whole pipeline folder
        path = path / "vae"
    if not (path / CONFIG_NAME).is_file():
        raise KinemaError(f"--vae {path}: not a VAE folder (no {CONFIG_NAME}); pass the OUT/final folder "
                          "of `kinema train vae`")
    return _load_component(path.parent, path.name, VAEConfig, CausalVideoVAE)


def latent_space_difference(trained, other) -> str:
    """'' when autoencoder `other` encodes like `trained` (same encoder weights and latent
    statistics, to float16 rounding: a fine-tune may start from shipped float16 weights), so a
    transformer trained on one fits the other; else which of the two differs."""
    def same(a, b) -> bool:
        a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
        return a.shape == b.shape and torch.allclose(a, b, rtol=2e-3, atol=1e-5)

    if not (same(trained.config.latent_mean, other.config.latent_mean)
            and same(trained.config.latent_std, other.config.latent_std)):
        return "its latent statistics differ"
    mine, theirs = trained.encoder.state_dict(), other.encoder.state_dict()
    if mine.keys() != theirs.keys() or any(not same(mine[k], theirs[k].to(mine[k].device)) for k in mine):
        return "its encoder differs"
    return ""


def save_vae(vae, path: Path) -> None:
    """config.json + diffusion_pytorch_model.safetensors: the layout of a pipeline's vae/ folder."""
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG_NAME).write_text(json.dumps(vae.config.to_dict(), indent=2) + "\n", encoding="utf-8")
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in vae.state_dict().items()}
    save_file(state, str(path / VAE_WEIGHTS), metadata={"format": "pt", "component": "vae"})


class VAETrainModule(nn.Module):
    """What DDP/FSDP wrap in the VAE stage: forward(x, mode) so every use goes through forward
    (the wrappers' hooks see it). mode: "loss" -> the loss (with `critic` and `boxes`, plus
    `shape_weight` times the critic's cross-entropy on the reconstruction's object crops, kept in
    `last_shape_loss`; with `latents`, those raw latents are decoded instead of the encoder's);
    "recon" -> reconstruction from the posterior mean; "raw" -> raw (unnormalised) latents."""

    def __init__(self, vae, kl_weight: float = 1e-4, motion_weight: float = 0.0, edge_weight: float = 0.0,
                 object_weight: float = 0.0, object_balance: bool = False, shape_weight: float = 0.0):
        super().__init__()
        self.vae = vae
        self.shape_weight = shape_weight
        self.last_shape_loss: torch.Tensor | None = None
        self.kl_weight = kl_weight
        self.motion_weight = motion_weight
        self.edge_weight = edge_weight
        self.object_weight = object_weight
        self.object_balance = object_balance

    def forward(self, x: torch.Tensor, mode: str = "loss", critic: nn.Module | None = None,
                boxes: torch.Tensor | None = None, latents: torch.Tensor | None = None):
        vae = self.vae
        if mode == "loss":
            self.last_shape_loss = None
            if hasattr(vae, "loss"):
                out = vae.loss(x, kl_weight=self.kl_weight, motion_weight=self.motion_weight,
                               edge_weight=self.edge_weight, object_weight=self.object_weight,
                               object_balance=self.object_balance, latents=latents)
                if critic is None or boxes is None or not len(boxes) or self.shape_weight == 0:
                    return out["loss"]
                from .shape_critic import shape_loss

                term = shape_loss(critic, out["rec"], boxes)
                self.last_shape_loss = term.detach()
                return out["loss"] + self.shape_weight * term
            recon, _ = vae(x)
            return F.mse_loss(recon.float(), x.float()) + F.l1_loss(recon.float(), x.float())
        if mode == "recon":
            return vae.decode(vae.encode(x))
        if mode == "raw":
            if hasattr(vae, "posterior"):
                return vae.posterior(x)[0]
            return vae.denormalize(vae.encode(x))
        raise ValueError(mode)


# ----- the transformer and the text encoder -----------------------------------------------------

def dit_config(model: dict, latent_channels: int, text_dim: int | None = None):
    from ..models.dit import DiTConfig

    check_model_fields(DiTConfig, model)
    d = dict(model)
    d["in_channels"] = latent_channels
    if text_dim is not None:
        d["text_dim"] = text_dim
    return DiTConfig.from_dict(d)


def init_component(stage: str, path: str | os.PathLike, model: nn.Module) -> nn.Module:
    """The component to fine-tune from (its weights and config, e.g. the VAE's latent statistics):
    a pipeline folder, or its vae/ (vae stage) or transformer/ (dit stage) folder. Its weights must
    fit `model` exactly, except that a decoder grown by `decoder_extra_blocks` may lack its extra
    blocks (they start as the identity) and a transformer its optional zero-start layers
    (`frame_position`, `cross_position`, `text_refiner`), and a transformer's layout layer may be
    grown to more channels (an outline added; the new channels start at zero weights); a mismatch
    is an error naming the tensors."""
    from ..models.dit import DiTConfig, VideoDiT, grow_layout_channels, zero_start_keys
    from ..models.vae import CausalVideoVAE, VAEConfig, grown_decoder_keys
    from ..pipeline import _load_component

    comp_name, config_cls, model_cls = (("vae", VAEConfig, CausalVideoVAE) if stage == "vae"
                                        else ("transformer", DiTConfig, VideoDiT))
    folder = Path(path).expanduser()
    if (folder / comp_name / CONFIG_NAME).is_file():
        folder = folder / comp_name
    if not (folder / CONFIG_NAME).is_file():
        raise KinemaError(f"init {path}: not a pipeline folder nor a {comp_name} folder (no {CONFIG_NAME})")
    try:
        loaded = _load_component(folder.parent, folder.name, config_cls, model_cls)
    except KinemaError as exc:
        raise KinemaError(f"init {folder}: not the {comp_name} weights the {stage} stage needs ({exc})") from None
    wanted_layout = getattr(getattr(model, "config", None), "layout_channels", 0)
    if stage != "vae" and 0 < loaded.config.layout_channels < wanted_layout:
        grow_layout_channels(loaded, wanted_layout)
    state = loaded.state_dict()
    expected = model.state_dict()
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    # layers that start as a no-op may be added to weights trained without them
    added = grown_decoder_keys(model) if stage == "vae" else zero_start_keys(model)
    missing = [k for k in expected if k not in state and k not in added]
    surplus = [k for k in state if k not in expected]
    if wrong or missing or surplus:
        raise KinemaError(f"init {folder}: the weights do not fit this run's model config ("
                          + "; ".join([f"shape {w}" for w in wrong[:3]] + [f"missing {m}" for m in missing[:3]]
                                      + [f"{k} not in this run's model" for k in surplus[:3]])
                          + "): use the same model fields as the run that made them")
    return loaded


def build_dit(cfg):
    from ..models.dit import VideoDiT

    return VideoDiT(cfg)


def load_text_encoder(path: str, max_length: int):
    from ..models.text import TextEncoder

    return TextEncoder.from_pretrained(path or None, max_length=max_length)


def text_dim_of(text_encoder) -> int | None:
    for attr in ("dim", "hidden_size", "output_dim"):
        v = getattr(text_encoder, attr, None)
        if isinstance(v, int):
            return v
    cfg = getattr(text_encoder, "config", None)
    for attr in ("dim", "hidden_size"):
        v = getattr(cfg, attr, None)
        if isinstance(v, int):
            return v
    return None


def export_pipeline(vae, dit, text_encoder, config: dict, out: Path) -> Path:
    """Write a whole pipeline folder to OUT/final via Pipeline.save_pretrained, atomically."""
    from ..pipeline import Pipeline

    pipe = Pipeline(vae, dit, text_encoder, config=dict(config))
    return replace_dir(out, lambda tmp: pipe.save_pretrained(tmp))


def export_vae(vae, out: Path) -> Path:
    return replace_dir(out, lambda tmp: save_vae(vae, tmp))


def replace_dir(final: Path, write) -> Path:
    """write(tmp) into a hidden sibling folder, then swap it in for `final`."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp")
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    tmp.mkdir()
    write(tmp)
    give_usual_permissions(tmp)
    if final.exists():
        os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def param_checksum(module: nn.Module) -> float:
    with torch.no_grad():
        total = torch.zeros((), dtype=torch.float64)
        for i, p in enumerate(module.parameters()):
            t = p.to_local() if hasattr(p, "to_local") else p
            total += (t.detach().double().cpu() * (1.0 + (i % 7))).sum()
    return float(total)


def to_device_tree(x: Any, device):
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    return x
