"""Copy a run's final transformer as float16 shards of at most 15 MiB (argv: FINAL_DIR OUT_DIR)."""
import sys
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
src, dst = Path(sys.argv[1]) / "transformer", Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
sd = {}
for f in sorted(src.glob("*.safetensors")):
    sd.update(load_file(str(f)))
limit, shards, cur, size = 15 * 2**20, [], {}, 0
for k in sorted(sd):
    t = sd[k].to(torch.float16).contiguous() if sd[k].is_floating_point() else sd[k].contiguous()
    n = t.numel() * t.element_size()
    if cur and size + n > limit:
        shards.append(cur); cur, size = {}, 0
    cur[k] = t; size += n
shards.append(cur)
for i, s in enumerate(shards):
    save_file(s, str(dst / f"part-{i + 1:02d}-of-{len(shards):02d}.safetensors"))
print(f"exported {len(sd)} tensors in {len(shards)} shards to {dst}")
