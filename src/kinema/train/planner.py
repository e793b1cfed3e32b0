"""Training the scene planner (`kinema.layout.planner`) on the world's captions.

    kinema train planner --out runs/planner

Captions of random train-split scenes, in every phrasing the world writes (a quarter in the
benchmark's fixed phrasing), are read once by the frozen text encoder; the planner learns each
object's words, the relation and the background from them with cross-entropy. It is checked on
captions of held-out scenes (combinations it never saw) and on the benchmark's prompts, and the
weights are written as safetensors with the accuracies beside them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import KinemaError
from ..files import atomic_write
from ..layout.planner import HEADS, RELATION_CLASSES, PlannerConfig, ScenePlanner, decode_plan
from ..world.captions import caption, canonical_caption, caption_relation, object_groups
from ..world.sample import sample_spec
from ..world.spec import BACKGROUNDS, MAX_OBJECTS, SceneSpec

IGNORE = -100


def plan_targets(spec: SceneSpec, with_relation: bool = True) -> dict[str, list[int] | int]:
    """Class indices for every head: objects in the order captions name them (groups expanded),
    IGNORE for the attributes of empty slots; the relation as a caption written `with_relation`
    names it."""
    order = [i for group in object_groups(spec) for i in group]
    targets: dict[str, list[int] | int] = {"present": [1 if k < len(order) else 0 for k in range(MAX_OBJECTS)]}
    for name, vocab in HEADS.items():
        targets[name] = [list(vocab).index(getattr(spec.objects[order[k]], name)) if k < len(order) else IGNORE
                         for k in range(MAX_OBJECTS)]
    rel = caption_relation(spec) if with_relation else None
    targets["relation"] = RELATION_CLASSES.index(rel or "none")
    targets["background"] = list(BACKGROUNDS).index(spec.background)
    return targets


def caption_set(n: int, seed: int, split: str = "train", canonical_share: float = 0.25,
                people_share: float = 0.0):
    """n (caption, targets) pairs of random `split` scenes: `canonical_share` of them in the
    benchmark's phrasing, `people_share` in sentence structures the world's captions do not use
    (`world.people_captions`), the rest in the world's random phrasings."""
    if not 0 <= people_share <= 1 - canonical_share:
        raise KinemaError(f"the share of people's captions (--people-captions) must be within "
                          f"[0, {1 - canonical_share:g}] ({canonical_share:g} of the captions are in the "
                          f"benchmark's phrasing), got {people_share}")
    from ..world.people_captions import people_caption

    rng = np.random.default_rng([seed, 7])
    out = []
    for _ in range(n):
        spec = sample_spec(rng, split=split, num_frames=25)
        if rng.random() < canonical_share:
            text = canonical_caption(spec)
        elif people_share and rng.random() < people_share / (1 - canonical_share):  # drawn only when asked
            text = people_caption(spec, rng)
        else:
            text = caption(spec, rng)
        out.append((text, plan_targets(spec)))
    return out


def _encode(text_encoder, captions: list[str], batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    states, masks = [], []
    for i in range(0, len(captions), batch):
        s, m = text_encoder.encode(captions[i:i + batch])
        states.append(s.to(torch.float16).cpu())
        masks.append(m.cpu())
    return torch.cat(states), torch.cat(masks)


def _stack(targets: list[dict]) -> dict[str, torch.Tensor]:
    return {k: torch.tensor([t[k] for t in targets]) for k in targets[0]}


def planner_loss(logits: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
    loss = F.binary_cross_entropy_with_logits(logits["present"], targets["present"].float())
    for name in HEADS:
        loss = loss + F.cross_entropy(logits[name].flatten(0, 1), targets[name].flatten(), ignore_index=IGNORE)
    loss = loss + F.cross_entropy(logits["relation"], targets["relation"])
    return loss + F.cross_entropy(logits["background"], targets["background"])


def plan_accuracy(planner: ScenePlanner, states: torch.Tensor, masks: torch.Tensor,
                  targets: list[dict]) -> dict[str, float]:
    """Share of prompts whose whole plan is right, and of each part."""
    planner.eval()
    right = {"plan": 0, "count": 0, "objects": 0, "relation": 0, "background": 0, "confident": 0}
    with torch.no_grad():
        for i in range(0, len(targets), 512):
            logits = planner(states[i:i + 512].float(), masks[i:i + 512])
            for j, t in enumerate(targets[i:i + 512]):
                plan = decode_plan(logits, j, min_confidence=0.0)
                confident = plan is not None and plan.confidence >= planner.config.min_confidence
                n = sum(t["present"])
                ok_count = plan is not None and len(plan.objects) == n
                ok_objects = ok_count and all(
                    list(HEADS[name]).index(getattr(o, name)) == t[name][k]
                    for k, o in enumerate(plan.objects) for name in HEADS)
                ok_rel = plan is not None and RELATION_CLASSES.index(plan.relation or "none") == t["relation"]
                ok_bg = plan is not None and list(BACKGROUNDS).index(plan.background) == t["background"]
                right["count"] += ok_count
                right["objects"] += ok_objects
                right["relation"] += ok_rel
                right["background"] += ok_bg
                right["confident"] += confident
                right["plan"] += ok_objects and ok_rel and ok_bg and confident
    planner.train()
    return {k: v / max(1, len(targets)) for k, v in right.items()}


def planner_checks(planner: ScenePlanner, text_encoder, seed: int = 0, check_captions: int = 2000,
                   benchmark_prompts: int = 200) -> dict[str, dict[str, float]]:
    """The planner's accuracy on captions of held-out scenes (combinations never trained on, in
    every phrasing) and on the benchmark's prompts (`kinema eval`'s first `benchmark_prompts` per
    category and split, whose binding and static prompts name no relation)."""
    from ..eval.prompts import benchmark_items

    held = caption_set(check_captions, seed + 1, "heldout", canonical_share=0.0)
    items = benchmark_items(benchmark_prompts, seed=0)
    ho_states, ho_masks = _encode(text_encoder, [c for c, _ in held])
    bm_states, bm_masks = _encode(text_encoder, [it.prompt for it in items])
    bm_targets = [plan_targets(it.spec, with_relation=it.category == "relation") for it in items]
    return {"heldout_captions": plan_accuracy(planner, ho_states, ho_masks, [t for _, t in held]),
            "benchmark_prompts": plan_accuracy(planner, bm_states, bm_masks, bm_targets)}


def train_planner(out: str | Path, *, captions: int = 40_000, steps: int = 3000, batch_size: int = 256,
                  lr: float = 1e-3, seed: int = 0, text_encoder=None, config: PlannerConfig | None = None,
                  check_captions: int = 2000, benchmark_prompts: int = 200, people_captions: float = 0.0,
                  log: Callable[[str], None] = print) -> dict:
    """Train a planner and write OUT/planner/{config.json, model.safetensors} and OUT/planner_report.json.
    `people_captions`: the share of captions in structures the world's captions do not use."""
    from safetensors.torch import save_file

    from .components import load_text_encoder

    if captions < batch_size or steps < 1:
        raise KinemaError(f"planner training needs at least one batch of captions ({batch_size}) and one step")
    out = Path(out)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    train = caption_set(captions, seed, "train", people_share=people_captions)  # refuses a bad share first
    text_encoder = text_encoder or load_text_encoder("", 32)
    log(f"kinema train planner: encoding {len(train)} captions")
    tr_states, tr_masks = _encode(text_encoder, [c for c, _ in train])
    tr_targets = _stack([t for _, t in train])
    cfg = config or PlannerConfig(text_dim=int(tr_states.shape[-1]))
    planner = ScenePlanner(cfg)
    opt = torch.optim.AdamW(planner.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(seed)
    log_every = max(1, steps // 10)
    running = 0.0
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(train), (batch_size,), generator=gen)
        logits = planner(tr_states[idx].float(), tr_masks[idx])
        loss = planner_loss(logits, {k: v[idx] for k, v in tr_targets.items()})
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(planner.parameters(), 1.0)
        opt.step()
        sched.step()
        running += float(loss.detach())
        if step % log_every == 0:
            log(f"step {step}/{steps} loss {running / log_every:.4f}")
            running = 0.0
    report = {"captions": captions, "people_captions": people_captions, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
              "seconds": round(time.perf_counter() - t0, 1),
              "train_sample": plan_accuracy(planner, tr_states[:check_captions], tr_masks[:check_captions],
                                            [t for _, t in train[:check_captions]]),
              **planner_checks(planner, text_encoder, seed, check_captions, benchmark_prompts)}
    folder = out / "planner"
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().contiguous() for k, v in planner.state_dict().items()}
    atomic_write(folder / "model.safetensors", lambda p: save_file(weights, str(p)))
    atomic_write(folder / "config.json", lambda p: p.write_text(json.dumps(cfg.to_dict(), indent=2) + "\n"))
    atomic_write(out / "planner_report.json", lambda p: p.write_text(json.dumps(report, indent=2) + "\n"))
    log(f"kinema train planner: wrote {folder}; whole plans right: held-out captions "
        f"{report['heldout_captions']['plan']:.1%}, benchmark prompts {report['benchmark_prompts']['plan']:.1%}")
    return report
