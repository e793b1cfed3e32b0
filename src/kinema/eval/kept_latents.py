"""An eval run's drawn latents, kept (`kinema eval --keep-latents`) so that a later run judges
another decoder on exactly the same transformer output (`kinema eval --latents-from RUN`).

A decoder-only change (`"vae_trainable": "decoder"`) leaves the transformer's latents as they
were, so sampling them again only repeats work: on a 2-core CPU sampling is about 85% of
an eval's time. The file records which transformer drew the latents and which encoder defines
their space, and a run that reads them refuses a pipeline that differs in either: its report
would otherwise not be that pipeline's."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from ..errors import KinemaError
from ..files import give_usual_permissions
from .prompts import Item

LATENTS_FILE = "latents.safetensors"


def weights_fingerprint(state: dict[str, torch.Tensor]) -> str:
    """A short hash of weights rounded to float16: a pipeline shipped in float16 and the same
    weights loaded back as float32 hash alike."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().to("cpu")
        h.update(f"{key}:{tuple(t.shape)}".encode())
        if t.is_floating_point():
            t = t.to(torch.float16)
        h.update(t.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def transformer_fingerprint(pipe) -> str:
    return weights_fingerprint(pipe.transformer.state_dict())


def latent_space_fingerprint(pipe) -> str:
    """The encoder and the latent statistics: what makes latents mean the same to two decoders."""
    vae = pipe.vae
    state = dict(vae.encoder.state_dict())
    state["latent_mean"] = torch.as_tensor(vae.config.latent_mean, dtype=torch.float32)
    state["latent_std"] = torch.as_tensor(vae.config.latent_std, dtype=torch.float32)
    return weights_fingerprint(state)


def item_key(item: Item, seed: int) -> str:
    return f"{item.category}/{item.split}/{item.index}/{int(seed)}"


def record_key(record: dict) -> str:
    """The key of a judged record (a line of samples.jsonl), as `item_key` names its (item, seed)."""
    return f"{record['category']}/{record['split']}/{record['index']}/{int(record['seed'])}"


class LatentKeeper:
    """Collects each video's latents and metadata during a run; `save` writes them at the end."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.latents: dict[str, torch.Tensor] = {}
        self.metadata: dict[str, dict] = {}

    def add(self, item: Item, seed: int, latents: torch.Tensor, metadata: dict) -> None:
        key = item_key(item, seed)
        self.latents[key] = latents.detach().to("cpu", torch.float32).contiguous()
        self.metadata[key] = metadata

    def save(self, out_dir: str | os.PathLike, settings: dict | None) -> Path:
        """Write OUT/latents.safetensors whole or not at all (a temporary file renamed)."""
        from safetensors.torch import save_file

        path = Path(out_dir) / LATENTS_FILE
        tmp = path.with_name(path.name + ".partial")
        header = {"transformer": transformer_fingerprint(self.pipe),
                  "latent_space": latent_space_fingerprint(self.pipe),
                  "settings": json.dumps(settings or {}), "videos": json.dumps(self.metadata)}
        save_file(self.latents, str(tmp), metadata=header)
        give_usual_permissions(tmp)  # safetensors writes it readable by its owner only
        os.replace(tmp, path)
        return path


class KeptLatents:
    """A run's kept latents, checked against the pipeline that will decode them."""

    def __init__(self, run_dir: str | os.PathLike, pipe):
        from safetensors import safe_open

        path = Path(run_dir)
        path = path / LATENTS_FILE if path.is_dir() else path
        if not path.is_file():
            raise KinemaError(f"--latents-from: {path} not found (an eval run keeps its latents with "
                              "--keep-latents)")
        try:
            with safe_open(str(path), framework="pt") as f:
                header = f.metadata() or {}
                self._latents = {k: f.get_tensor(k) for k in f.keys()}
            self.metadata: dict[str, dict] = json.loads(header["videos"])
            self.settings: dict = json.loads(header["settings"])
            drawn_by, space = header["transformer"], header["latent_space"]
        except KinemaError:
            raise
        except Exception as e:  # a truncated or foreign file
            raise KinemaError(f"--latents-from: {path} is not a kept-latents file ({e})") from None
        if space != latent_space_fingerprint(pipe):
            raise KinemaError(f"--latents-from: {path} holds latents of another latent space (this "
                              "pipeline's encoder or latent statistics differ), so its decoder would "
                              "misread them")
        if drawn_by != transformer_fingerprint(pipe):
            raise KinemaError(f"--latents-from: {path} was drawn by another transformer than this "
                              "pipeline's; the report would not be this pipeline's (give the new "
                              "decoder the same transformer, e.g. a copy of the pipeline with its vae/ "
                              "replaced)")
        self.path = path

    def check(self, jobs: list[tuple[Item, int]]) -> None:
        """Refuse, before any decoding, (item, seed) jobs the run did not keep."""
        missing = [item_key(it, s) for it, s in jobs if item_key(it, s) not in self._latents]
        if missing:
            raise KinemaError(f"--latents-from: {self.path} has no latents for {len(missing)} of the "
                              f"videos asked, e.g. {missing[0]} (ask for the prompts, seeds and "
                              "categories of the run that kept them, or fewer)")
        for it, s in jobs:
            kept = self.metadata[item_key(it, s)].get("prompt")
            if kept != it.prompt:
                raise KinemaError(f"--latents-from: {item_key(it, s)} was drawn for {kept!r}, not "
                                  f"{it.prompt!r}: another benchmark version")

    def batch(self, jobs: list[tuple[Item, int]]) -> tuple[torch.Tensor, list[dict]]:
        """The latents [B, C, n, h, w] and metadata of these (item, seed) jobs."""
        self.check(jobs)
        latents = torch.stack([self._latents[item_key(it, s)] for it, s in jobs])
        return latents, [self.metadata[item_key(it, s)] for it, s in jobs]
