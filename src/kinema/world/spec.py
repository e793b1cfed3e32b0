"""Scene specs of the procedural world, vocabulary v1 (DESIGN §3): dataclasses, JSON, validation."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import KinemaError

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (240, 220, 40),
    "green": (40, 170, 60),
    "blue": (40, 90, 220),
    "purple": (140, 60, 200),
    "pink": (240, 110, 180),
    "white": (240, 240, 240),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (20, 20, 24),
    "gray": (110, 110, 115),
    "navy": (20, 28, 70),
    "sand": (200, 180, 140),
}
SHAPES = ("circle", "square", "triangle", "star")
SIZES: dict[str, float] = {"small": 0.15, "large": 0.30}  # width as a fraction of the shorter side
MOTIONS = ("still", "left", "right", "up", "down")
MOTION_VECTORS: dict[str, tuple[int, int]] = {
    "still": (0, 0), "left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1),
}
RELATIONS = ("left of", "right of", "above", "below")
DEFAULT_DISTANCE = 0.45
MIN_DISTANCE = 0.30
MAX_OBJECTS = 3
MIN_SIDE = 32

# The benchmark's unseen combinations: never produced by the train split.
HELDOUT_COLOR_SHAPE = {("green", "triangle"), ("blue", "circle"), ("pink", "square"), ("yellow", "star")}
HELDOUT_SHAPE_MOTION = {("square", "up"), ("circle", "left")}
HELDOUT_COLOR_MOTION = {("purple", "right"), ("orange", "down")}


class SpecError(KinemaError, ValueError):
    """An invalid scene spec; the message names the field and, for words, the allowed values."""


@dataclass
class ObjectSpec:
    shape: str
    color: str
    size: str = "large"
    motion: str = "still"
    start: tuple[float, float] = (0.5, 0.5)
    distance: float = DEFAULT_DISTANCE

    def is_heldout(self) -> bool:
        """True when this object shows one of the held-out combinations."""
        return (
            (self.color, self.shape) in HELDOUT_COLOR_SHAPE
            or (self.shape, self.motion) in HELDOUT_SHAPE_MOTION
            or (self.color, self.motion) in HELDOUT_COLOR_MOTION
        )


@dataclass
class SceneSpec:
    width: int = 128
    height: int = 128
    fps: float = 12.0
    num_frames: int = 25
    background: str = "navy"
    seed: int = 0
    objects: list[ObjectSpec] = field(default_factory=list)

    # ----- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for o in d["objects"]:
            o["start"] = [float(o["start"][0]), float(o["start"][1])]
        if float(self.fps).is_integer():
            d["fps"] = int(self.fps)
        return d

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> "SceneSpec":
        if not isinstance(data, dict):
            raise SpecError("spec must be a JSON object")
        known = {"width", "height", "fps", "num_frames", "background", "seed", "objects"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"unknown field {unknown[0]!r}; allowed fields: {', '.join(sorted(known))}")
        objs = data.get("objects", [])
        if not isinstance(objs, list):
            raise SpecError("objects: must be a list")
        objects = [_object_from_dict(o, i) for i, o in enumerate(objs)]
        spec = cls(
            width=_number(data, "width", 128, int),
            height=_number(data, "height", 128, int),
            fps=_number(data, "fps", 12.0, float),
            num_frames=_number(data, "num_frames", 25, int),
            background=data.get("background", "navy"),
            seed=_number(data, "seed", 0, int),
            objects=objects,
        )
        spec.validate()
        return spec

    @classmethod
    def from_json(cls, text: str) -> "SceneSpec":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        return cls.from_dict(data)

    # ----- geometry -------------------------------------------------------------------------
    @property
    def shorter_side(self) -> int:
        return min(self.width, self.height)

    def object_width_px(self, obj: ObjectSpec) -> float:
        return SIZES[obj.size] * self.shorter_side

    def half_extent(self, obj: ObjectSpec) -> tuple[float, float]:
        """Half the object's bounding box, as fractions of frame width and height."""
        half = self.object_width_px(obj) / 2.0
        return half / self.width, half / self.height

    def center(self, obj: ObjectSpec, frame: int) -> tuple[float, float]:
        """The object's centre at `frame`, as fractions of width and height."""
        progress = frame / (self.num_frames - 1) if self.num_frames > 1 else 0.0
        dx, dy = MOTION_VECTORS[obj.motion]
        return (obj.start[0] + dx * obj.distance * progress, obj.start[1] + dy * obj.distance * progress)

    # ----- validation -----------------------------------------------------------------------
    def validate(self) -> "SceneSpec":
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < MIN_SIDE or value > 4096:
                raise SpecError(f"{name}: must be an integer from {MIN_SIDE} to 4096, got {value!r}")
        if not (isinstance(self.num_frames, int) and 1 <= self.num_frames <= 10000):
            raise SpecError(f"num_frames: must be an integer from 1 to 10000, got {self.num_frames!r}")
        if not (isinstance(self.fps, (int, float)) and 0 < self.fps <= 240):
            raise SpecError(f"fps: must be a number above 0 and at most 240, got {self.fps!r}")
        _check_word("background", self.background, BACKGROUNDS)
        if not 1 <= len(self.objects) <= MAX_OBJECTS:
            raise SpecError(f"objects: must hold 1 to {MAX_OBJECTS} objects, got {len(self.objects)}")
        for i, obj in enumerate(self.objects):
            where = f"objects[{i}]"
            _check_word(f"{where}.shape", obj.shape, SHAPES)
            _check_word(f"{where}.color", obj.color, COLORS)
            _check_word(f"{where}.size", obj.size, SIZES)
            _check_word(f"{where}.motion", obj.motion, MOTIONS)
            if not (isinstance(obj.distance, (int, float)) and MIN_DISTANCE <= obj.distance <= 0.9):
                raise SpecError(f"{where}.distance: must be from {MIN_DISTANCE} to 0.9, got {obj.distance!r}")
            hx, hy = self.half_extent(obj)
            for f in (0, self.num_frames - 1):
                cx, cy = self.center(obj, f)
                if cx - hx < -1e-9 or cx + hx > 1 + 1e-9 or cy - hy < -1e-9 or cy + hy > 1 + 1e-9:
                    raise SpecError(
                        f"{where}.start: the object leaves the frame (centre ({cx:.2f}, {cy:.2f}) at frame {f}); "
                        "move the start or shorten the distance"
                    )
        for i in range(len(self.objects)):
            for j in range(i + 1, len(self.objects)):
                if self.min_gap(i, j) <= 0:
                    raise SpecError(f"objects[{i}] and objects[{j}] overlap; in v1 objects never overlap")
        return self

    def min_gap(self, i: int, j: int) -> float:
        """Smallest gap in pixels between the bounding boxes of objects i and j over the clip
        (negative when they overlap). Motion is linear, so the extreme lies at an end or where
        the gap function changes slope; sampling densely is exact enough and simple."""
        a, b = self.objects[i], self.objects[j]
        ha = self.object_width_px(a) / 2
        hb = self.object_width_px(b) / 2
        gap = float("inf")
        steps = max(2, min(self.num_frames, 64))
        for k in range(steps):
            f = k * (self.num_frames - 1) / (steps - 1) if self.num_frames > 1 else 0
            ax, ay = self.center(a, f)
            bx, by = self.center(b, f)
            gx = abs(ax - bx) * self.width - ha - hb
            gy = abs(ay - by) * self.height - ha - hb
            gap = min(gap, max(gx, gy))
        return gap


def _check_word(name: str, value: Any, allowed) -> None:
    if value not in allowed:
        raise SpecError(f"{name}: unknown value {value!r}; allowed: {', '.join(allowed)}")


def _number(data: dict, key: str, default, kind):
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{key}: must be a number, got {value!r}")
    if kind is int:
        if float(value) != int(value):
            raise SpecError(f"{key}: must be a whole number, got {value!r}")
        return int(value)
    return float(value)


def _object_from_dict(o: Any, i: int) -> ObjectSpec:
    where = f"objects[{i}]"
    if not isinstance(o, dict):
        raise SpecError(f"{where}: must be a JSON object")
    known = {"shape", "color", "size", "motion", "start", "distance"}
    unknown = sorted(set(o) - known)
    if unknown:
        raise SpecError(f"{where}: unknown field {unknown[0]!r}; allowed fields: {', '.join(sorted(known))}")
    for req in ("shape", "color"):
        if req not in o:
            raise SpecError(f"{where}.{req}: missing")
    start = o.get("start", [0.5, 0.5])
    if (not isinstance(start, (list, tuple)) or len(start) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in start)):
        raise SpecError(f"{where}.start: must be [x, y] fractions of the frame, got {start!r}")
    distance = o.get("distance", DEFAULT_DISTANCE)
    if isinstance(distance, bool) or not isinstance(distance, (int, float)):
        raise SpecError(f"{where}.distance: must be a number, got {distance!r}")
    return ObjectSpec(
        shape=o["shape"], color=o["color"], size=o.get("size", "large"), motion=o.get("motion", "still"),
        start=(float(start[0]), float(start[1])), distance=float(distance),
    )
