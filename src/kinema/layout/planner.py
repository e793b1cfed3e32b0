"""The scene planner: from a prompt's text-encoder states to the objects it asks for.

A small transformer decoder whose `MAX_OBJECTS` slot queries read the frozen encoder's token
states. Each slot says whether it holds an object and that object's colour, shape, size and
motion; the first two slots also say the spatial relation of the first to the second; the
pooled states say the background. Slots follow the order in which the prompt names the objects,
a group ("two red circles") taking one slot per object. Each attribute is its own head, so a
combination never seen in training (a green triangle) is read as its parts.

It is trained on the world's captions (`kinema.train.planner`); where a prompt falls outside
what it knows (a head's best guess below `min_confidence`), `plan` gives None and the
transformer goes by the words alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..world.spec import BACKGROUNDS, COLORS, MAX_OBJECTS, MOTIONS, RELATIONS, SHAPES, SIZES, ObjectSpec

RELATION_CLASSES = ("none",) + RELATIONS
HEADS: dict[str, tuple[str, ...]] = {
    "color": tuple(COLORS), "shape": SHAPES, "size": tuple(SIZES), "motion": MOTIONS,
}


@dataclass
class PlannerConfig:
    text_dim: int = 384
    width: int = 192
    depth: int = 2
    num_heads: int = 4
    slots: int = MAX_OBJECTS
    min_confidence: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PlannerConfig":
        from ..models.vae import check_config_keys

        check_config_keys(cls, d)
        return cls(**d)


@dataclass
class Plan:
    """What a prompt asks for: objects in naming order, the background, the relation of the first
    object to the second (None: none asked), and the planner's lowest confidence in any of it."""

    objects: list[ObjectSpec]
    background: str
    relation: str | None
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {"objects": [{"shape": o.shape, "color": o.color, "size": o.size, "motion": o.motion}
                            for o in self.objects],
                "background": self.background, "relation": self.relation,
                "confidence": round(float(self.confidence), 4)}


class ScenePlanner(nn.Module):
    def __init__(self, config: PlannerConfig):
        super().__init__()
        self.config = cfg = config
        W = cfg.width
        self.text_in = nn.Sequential(nn.Linear(cfg.text_dim, W), nn.GELU(), nn.Linear(W, W))
        self.position = nn.Parameter(torch.zeros(64, W))  # the token's place in the prompt
        self.queries = nn.Parameter(torch.randn(cfg.slots, W) * 0.02)
        self.layers = nn.ModuleList([
            nn.TransformerDecoderLayer(W, cfg.num_heads, 4 * W, dropout=0.0, batch_first=True, norm_first=True)
            for _ in range(cfg.depth)
        ])
        self.norm = nn.LayerNorm(W)
        self.present = nn.Linear(W, 1)
        self.attributes = nn.ModuleDict({name: nn.Linear(W, len(words)) for name, words in HEADS.items()})
        self.relation = nn.Linear(2 * W, len(RELATION_CLASSES))
        self.background = nn.Linear(W, len(BACKGROUNDS))

    def forward(self, text_states: Tensor, text_mask: Tensor) -> dict[str, Tensor]:
        """Logits: present [B, S], color/shape/size/motion [B, S, n], relation [B, 5], background [B, 4]."""
        B, L, _ = text_states.shape
        if L > self.position.shape[0]:
            raise ValueError(f"the planner reads at most {self.position.shape[0]} tokens, got {L}")
        mask = text_mask.to(torch.bool)
        memory = self.text_in(text_states.float()) + self.position[:L]
        x = self.queries[None].expand(B, -1, -1)
        # the text mask as a per-head attention mask: the same attention as memory_key_padding_mask,
        # whose shape check imports sympy (0.2-0.5 s, once per process: a tenth of `kinema generate`)
        blocked = (~mask)[:, None, :].expand(B, x.shape[1], L).repeat_interleave(self.config.num_heads, dim=0)
        for layer in self.layers:
            x = layer(x, memory, memory_mask=blocked)
        x = self.norm(x)
        m = mask.float()[..., None]
        pooled = (memory * m).sum(1) / m.sum(1).clamp(min=1.0)
        out = {"present": self.present(x)[..., 0],
               "relation": self.relation(torch.cat([x[:, 0], x[:, 1]], dim=-1)),
               "background": self.background(pooled)}
        for name, head in self.attributes.items():
            out[name] = head(x)
        return out

    @torch.no_grad()
    def plan(self, text_states: Tensor, text_mask: Tensor) -> list[Plan | None]:
        """One plan per prompt; None where the planner is not confident (below `min_confidence`)."""
        logits = self(text_states, text_mask)
        return [decode_plan(logits, i, self.config.min_confidence) for i in range(text_states.shape[0])]


def plan_prompts(planner: ScenePlanner, text_encoder, prompts: list[str], batch: int = 128) -> list[Plan | None]:
    """The planner's plan of each prompt as `text_encoder` reads it (None where it is unsure), in batches."""
    plans: list[Plan | None] = []
    for start in range(0, len(prompts), batch):
        states, mask = text_encoder.encode(list(prompts[start:start + batch]))
        plans.extend(planner.plan(states.float(), mask))
    return plans


def decode_plan(logits: dict[str, Tensor], i: int, min_confidence: float = 0.5) -> Plan | None:
    """The most likely plan for sample i of a batch of logits, or None if any of its parts is
    less certain than `min_confidence` (or it names no object, or leaves a gap between slots)."""
    present = torch.sigmoid(logits["present"][i].float())
    used = [bool(p > 0.5) for p in present]
    n = sum(used)
    if n == 0 or used[:n] != [True] * n:
        return None
    confidence = min(float(torch.maximum(p, 1 - p)) for p in present)
    objects = []
    for k in range(n):
        words = {}
        for name, vocab in HEADS.items():
            probs = F.softmax(logits[name][i, k].float(), dim=-1)
            best = int(probs.argmax())
            confidence = min(confidence, float(probs[best]))
            words[name] = vocab[best]
        objects.append(ObjectSpec(shape=words["shape"], color=words["color"], size=words["size"],
                                  motion=words["motion"]))
    rel_probs = F.softmax(logits["relation"][i].float(), dim=-1)
    bg_probs = F.softmax(logits["background"][i].float(), dim=-1)
    rel = RELATION_CLASSES[int(rel_probs.argmax())]
    confidence = min(confidence, float(rel_probs.max()), float(bg_probs.max()))
    if rel != "none" and n != 2:
        return None  # a relation needs exactly two objects
    if confidence < min_confidence:
        return None
    return Plan(objects=objects, background=list(BACKGROUNDS)[int(bg_probs.argmax())],
                relation=None if rel == "none" else rel, confidence=confidence)


def describe_plan(plan: dict[str, Any]) -> str:
    """A plan's dict (`Plan.to_dict`, as in a video's metadata) in words, e.g. "a large red circle
    moving right left of a small blue star staying still, on navy"."""
    objects = [f"a {o['size']} {o['color']} {o['shape']} " + ("staying still" if o["motion"] == "still"
                                                              else f"moving {o['motion']}")
               for o in plan["objects"]]
    joiner = f" {plan['relation']} " if plan.get("relation") else ", "
    return joiner.join(objects) + f", on {plan['background']}"
