"""Judge one generated video against its intended scene, from the analyzer's facts alone."""

from __future__ import annotations

from itertools import permutations

import numpy as np

from ..world.captions import relation_between
from ..world.spec import SceneSpec

ATTRS = ("color", "shape", "size", "motion")


def _best_assignment(spec: SceneSpec, objects: list[dict]) -> list[int | None]:
    """Map each intended object to a distinct detected one, maximising matching attributes."""
    n, m = len(spec.objects), len(objects)
    if m == 0:
        return [None] * n
    best, best_score = None, -1
    slots = list(range(m)) + [None] * n
    for perm in set(permutations(slots, n)):
        score = sum(sum(objects[j][a] == getattr(o, a) for a in ATTRS) + 0.1 * (j is not None)
                    for o, j in zip(spec.objects, perm) if j is not None)
        if score > best_score:
            best, best_score = list(perm), score
    return best


def _reindex(facts: dict, kept: list[dict]) -> list[dict]:
    index = {id(o): k for k, o in enumerate(kept)}
    old = {i: index.get(id(o)) for i, o in enumerate(facts["objects"])}
    return [{**r, "subject": old[r["subject"]], "object": old[r["object"]]} for r in facts["relations"]
            if old.get(r["subject"]) is not None and old.get(r["object"]) is not None]


def judge(category: str, spec: SceneSpec, facts: dict, frames: np.ndarray | None = None) -> dict:
    """Per-sample verdicts (True/False, or None when a verdict does not apply) and measurements."""
    # The most persistent detections; spurious blobs beyond these cannot help a match.
    objects = sorted(facts["objects"], key=lambda o: -o["frames_seen"])[:6]
    facts = {**facts, "objects": objects, "relations": _reindex(facts, objects)}
    assign = _best_assignment(spec, objects)
    matched = [(o, objects[j]) for o, j in zip(spec.objects, assign) if j is not None]
    out: dict = {"num_detected": len(objects)}
    primary = max(objects, key=lambda o: o["frames_seen"]) if objects else None

    if category == "single":
        (want,) = spec.objects
        for attr in ATTRS:
            out[attr] = primary is not None and primary[attr] == getattr(want, attr)
    if category == "count":
        out["count"] = len(objects) == len(spec.objects)
    if category in ("relation", "binding"):
        a, b = spec.objects
        pairs = {(o["color"], o["shape"]) for o in objects}
        out["binding"] = len(objects) >= 2 and (a.color, a.shape) in pairs and (b.color, b.shape) in pairs
    if category == "relation":
        want = relation_between(spec, 0, 1)
        ia = next((i for i, o in enumerate(objects) if (o["color"], o["shape"]) == (spec.objects[0].color, spec.objects[0].shape)), None)
        ib = next((i for i, o in enumerate(objects) if (o["color"], o["shape"]) == (spec.objects[1].color, spec.objects[1].shape) and i != ia), None)
        out["relation"] = (ia is not None and ib is not None
                           and {"subject": ia, "relation": want, "object": ib} in facts["relations"])
    everything = len(objects) == len(spec.objects) and len(matched) == len(spec.objects) and all(
        all(d[a] == getattr(o, a) for a in ATTRS) for o, d in matched)
    if category == "relation":
        everything = everything and out["relation"]
    out["everything"] = bool(everything)
    # one entry per intended object: an object the video never shows is not alive either
    out["alive"] = [j is not None and all(p is not None for p in objects[j]["track"]) for j in assign]
    if category == "static" and frames is not None and len(frames) > 1:
        diff = np.abs(np.diff(frames.astype(np.float32), axis=0)).mean() / 255.0
        out["stability"] = float(1.0 - diff)
    return out
