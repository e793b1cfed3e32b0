"""An eval run's progress, kept on disk as it goes, so that a run stopped part-way (a kill, a
crash, the end of a session) continues with `kinema eval --resume` instead of starting again.

A benchmark at DESIGN §4's size takes hours on a laptop CPU. The run writes its progress to
OUT/unfinished/: first the run's identity (its prompts, seeds, settings and the weights'
fingerprints), then one part per batch of judged videos: their records, their kept latents (with
--keep-latents) and the frames the contact sheet will show. A part's JSON file is written last and
atomically, so a part counts only when whole. A resume with another model, other prompts or other
settings is refused by name, since its report would mix two runs. The folder is removed once the
report is written."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from ..errors import KinemaError
from ..files import atomic_write
from .kept_latents import item_key, record_key, weights_fingerprint
from .prompts import Item

PROGRESS_DIR = "unfinished"
IDENTITY_FILE = "run.json"


def jobs_digest(jobs: list[tuple[Item, int]]) -> str:
    """A short hash of the run's (item, seed) jobs: the prompts and scenes a resume must repeat."""
    h = hashlib.sha256()
    for item, seed in jobs:
        h.update(json.dumps([item_key(item, seed), item.prompt, item.spec.to_dict()], sort_keys=True).encode())
    return h.hexdigest()[:16]


def pipeline_fingerprint(pipe) -> str | None:
    """A short hash of the pipeline's trained weights (transformer, autoencoder, scene planner), or
    None for a pipeline that has none of them (e.g. a test oracle)."""
    state: dict[str, torch.Tensor] = {}
    for part in ("transformer", "vae", "planner"):
        module = getattr(pipe, part, None)
        if isinstance(module, torch.nn.Module):
            state.update({f"{part}.{k}": v for k, v in module.state_dict().items()})
    return weights_fingerprint(state) if state else None


class RunProgress:
    """The unfinished run in OUT/unfinished/: what it has done, and a place to add to it."""

    def __init__(self, out_dir: str | os.PathLike, identity: dict, resume: bool):
        self.out = Path(out_dir)
        self.dir = self.out / PROGRESS_DIR
        self.records: list[dict] = []
        self.latents: dict[str, torch.Tensor] = {}
        self.metadata: dict[str, dict] = {}
        self.sheet_frames: dict[str, np.ndarray] = {}
        self.elapsed = 0.0
        self.sessions = 1
        if (self.dir / IDENTITY_FILE).is_file():
            self._load(identity, resume)
        elif resume and (self.out / "report.json").is_file():
            raise KinemaError(f"--resume: the run in {self.out} is finished (its report.json is there); "
                              "nothing to resume")
        else:  # a fresh run (a folder left without its identity file holds no part worth keeping)
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir.mkdir(parents=True)
            atomic_write(self.dir / IDENTITY_FILE, lambda p: p.write_text(json.dumps(identity, indent=1)))
        self._parts = len(list(self.dir.glob("part_*.json")))

    def _load(self, identity: dict, resume: bool) -> None:
        parts = [(path, json.loads(path.read_text())) for path in sorted(self.dir.glob("part_*.json"))]
        done = sum(len(data["records"]) for _, data in parts)
        if not resume:
            raise KinemaError(f"{self.out} holds an unfinished run ({done} videos judged); add --resume to "
                              "continue it, or write the report to another folder")
        saved = json.loads((self.dir / IDENTITY_FILE).read_text())
        differ = sorted(k for k in set(saved) | set(identity) if saved.get(k) != identity.get(k))
        if differ:
            raise KinemaError(f"--resume: the unfinished run in {self.out} was started with different "
                              f"{', '.join(differ)}; resume it with what it was started with, or write "
                              "to another folder")
        for part, data in parts:
            self.records.extend(data["records"])
            self.elapsed += data["elapsed"]
            self.sessions = max(self.sessions, data["session"] + 2)  # this one comes after it
            stem = part.with_suffix("")
            if data["latents"]:
                from safetensors.torch import load_file

                self.latents.update(load_file(str(stem) + ".safetensors"))
                self.metadata.update(data["latents"])
            if data["sheet"]:
                with np.load(str(stem) + ".npz") as frames:
                    self.sheet_frames.update({key: frames[key.replace("/", "|")] for key in data["sheet"]})

    @property
    def done(self) -> set[str]:
        return {record_key(r) for r in self.records}

    def add_part(self, records: list[dict], elapsed: float, latents: dict[str, torch.Tensor] | None = None,
                 metadata: dict[str, dict] | None = None, sheet_frames: dict[str, np.ndarray] | None = None) -> None:
        """Keep one batch of judged videos: the tensors first, the part's JSON last."""
        stem = self.dir / f"part_{self._parts:05d}"
        if latents:
            from safetensors.torch import save_file

            atomic_write(stem.with_suffix(".safetensors"),
                         lambda p: save_file({k: v.contiguous() for k, v in latents.items()}, str(p)))
        if sheet_frames:
            atomic_write(stem.with_suffix(".npz"), lambda p: np.savez(
                p, **{k.replace("/", "|"): v for k, v in sheet_frames.items()}))
        part = {"records": records, "elapsed": elapsed, "session": self.sessions - 1,
                "latents": dict(metadata or {}) if latents else {}, "sheet": sorted(sheet_frames or {})}
        atomic_write(stem.with_suffix(".json"), lambda p: p.write_text(json.dumps(part)))
        self._parts += 1

    def finish(self) -> None:
        """The report is written: the progress is no longer needed."""
        shutil.rmtree(self.dir, ignore_errors=True)
