"""Checkpoints: safetensors for every tensor, JSON for the rest, no pickle anywhere.

    OUT/checkpoints/step_00001000/
        model.safetensors        the trained weights (full, unsharded)
        ema.safetensors          the EMA weights (if any)
        optimizer.safetensors    optimiser tensors, keys "state/<param name>/<key>"
        optimizer.json           param groups and any non-tensor state
        rng_rank<R>.safetensors  torch CPU/CUDA RNG and the trainer's generators, per process
        rng_rank<R>.json         numpy and python RNG states, per process
        trainer_state.json       step, data position, elapsed time, config (written last)

A checkpoint is written into a hidden temporary folder and renamed into place, so a folder named
step_* is always complete; the last `keep` are kept.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import KinemaError

_STEP_DIR = re.compile(r"^step_(\d{8,})$")
STATE_FILE = "trainer_state.json"


def checkpoint_root(out: Path) -> Path:
    return Path(out) / "checkpoints"


def list_checkpoints(out: Path) -> list[tuple[int, Path]]:
    root = checkpoint_root(out)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and (p / STATE_FILE).is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(out: Path) -> Path | None:
    found = list_checkpoints(out)
    return found[-1][1] if found else None


def step_dir(out: Path, step: int) -> Path:
    return checkpoint_root(out) / f"step_{step:08d}"


def tmp_dir(out: Path, step: int) -> Path:
    return checkpoint_root(out) / f".tmp-step_{step:08d}"


def prepare_tmp(out: Path, step: int) -> Path:
    """(rank 0) A fresh temporary folder for the checkpoint of `step`; stale ones are removed."""
    root = checkpoint_root(out)
    root.mkdir(parents=True, exist_ok=True)
    for p in root.iterdir():
        if p.name.startswith(".tmp-step_"):
            shutil.rmtree(p, ignore_errors=True)
    tmp = tmp_dir(out, step)
    tmp.mkdir(parents=True)
    return tmp


def commit(out: Path, step: int, keep: int) -> Path:
    """(rank 0) Rename the temporary folder into place and prune to the last `keep`."""
    tmp, final = tmp_dir(out, step), step_dir(out, step)
    _fsync_dir_files(tmp)
    if final.exists():  # re-saving a step (e.g. resumed at the end): replace it
        old = final.with_name(f".old-{final.name}")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
    for _, path in list_checkpoints(out)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
    return final


def _fsync_dir_files(folder: Path) -> None:
    for p in folder.iterdir():
        try:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass


# ----- tensors ----------------------------------------------------------------------------------

def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    save_file(clean, str(path), metadata=metadata)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise KinemaError(f"{path}: missing from the checkpoint") from None
    except Exception as exc:
        raise KinemaError(f"{path}: not a readable safetensors file ({exc})") from None


def flatten_optimizer(osd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimiser state dict (param names as keys, as get_optimizer_state_dict gives) as
    tensors + JSON."""
    tensors: dict[str, torch.Tensor] = {}
    extra: dict[str, dict[str, Any]] = {}
    for name, state in osd.get("state", {}).items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state/{name}/{key}"] = value
            else:
                extra.setdefault(str(name), {})[key] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in osd.get("param_groups", [])]
    return tensors, {"param_groups": groups, "extra_state": extra}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[str, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, rest = key.split("/", 1)
        name, field = rest.rsplit("/", 1)
        state.setdefault(name, {})[field] = value
    for name, extra in meta.get("extra_state", {}).items():
        state.setdefault(name, {}).update(extra)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


# ----- random number generators -----------------------------------------------------------------

def rng_state(generators: dict[str, torch.Generator]) -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["torch_cuda"] = torch.cuda.get_rng_state()
    for name, gen in generators.items():
        tensors[f"gen/{name}"] = gen.get_state()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    meta = {
        "numpy": {"kind": kind, "keys": base64.b64encode(np.asarray(keys, dtype="<u4").tobytes()).decode(),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": py_version, "state": list(py_state), "gauss_next": py_gauss},
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict, generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    if "torch_cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["torch_cuda"])
    for name, gen in generators.items():
        key = f"gen/{name}"
        if key in tensors:
            gen.set_state(tensors[key])
    n = meta["numpy"]
    keys = np.frombuffer(base64.b64decode(n["keys"]), dtype="<u4").astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = meta["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KinemaError(f"{path}: missing from the checkpoint") from None
    except json.JSONDecodeError as exc:
        raise KinemaError(f"{path}: not valid JSON ({exc.msg})") from None
