"""Add one fine-tune's weight change to another model: base + alpha × (donor − ref), on the
transformer tensors whose names match a regular expression (the rest stay base's), written as a
copy of base's pipeline folder with float16 transformer weights.

    python scripts/graft_delta.py BASE REF DONOR OUT [--match REGEX] [--alpha A] [--guidance G]

E.g. the change a fine-tune made to v9's undistilled teacher (REF → DONOR), added to the shipped,
distilled model (BASE), to try a fine-tune's effect without distilling again.
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def transformer_state(folder: str | Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for f in sorted(glob.glob(f"{folder}/transformer/*.safetensors")):
        state.update(load_file(f))
    if not state:
        raise SystemExit(f"graft_delta: no transformer weights in {folder}")
    return state


def graft(base: dict, ref: dict, donor: dict, match: str = ".*", alpha: float = 1.0) -> tuple[dict, int]:
    """(new state in float16, how many tensors changed)."""
    missing = sorted(set(base) ^ set(ref) | set(base) ^ set(donor))
    if missing:
        raise SystemExit(f"graft_delta: the three models' tensors differ, e.g. {missing[:3]}")
    pattern, out, changed = re.compile(match), {}, 0
    for name, tensor in base.items():
        if pattern.search(name):
            tensor = tensor.float() + alpha * (donor[name].float() - ref[name].float())
            changed += 1
        out[name] = tensor.to(torch.float16)
    return out, changed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base"); ap.add_argument("ref"); ap.add_argument("donor"); ap.add_argument("out")
    ap.add_argument("--match", default=".*", help="regex on tensor names (default: all)")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--guidance", type=float, default=None, help="record this guidance in OUT's model_index.json")
    a = ap.parse_args()
    state, changed = graft(transformer_state(a.base), transformer_state(a.ref), transformer_state(a.donor),
                           a.match, a.alpha)
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(a.base, out)
    for f in out.glob("transformer/*.safetensors"):
        f.unlink()
    save_file(state, str(out / "transformer" / "diffusion_pytorch_model.safetensors"))
    if a.guidance is not None:
        index = out / "model_index.json"
        data = json.loads(index.read_text())
        data["defaults"]["guidance"] = a.guidance
        index.write_text(json.dumps(data, indent=2) + "\n")
    print(f"{changed} of {len(state)} tensors grafted into {out}")


if __name__ == "__main__":
    main()
