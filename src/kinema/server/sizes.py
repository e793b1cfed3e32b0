"""How OpenAI's Videos API values map onto what the Kinema model renders.

Sizes
-----
`size` accepts OpenAI's four values and the model's own ``"WxH"``:

==============  ========================  ===============================
OpenAI size     aspect                    rendered (default scale 128)
==============  ========================  ===============================
``1280x720``    16:9 landscape            ``224x128``
``720x1280``    9:16 portrait             ``128x224``
``1792x1024``   7:4 landscape             ``224x128``
``1024x1792``   4:7 portrait              ``128x224``
==============  ========================  ===============================

An OpenAI size keeps its aspect ratio and is scaled so that its shorter side equals the model's
native scale (``--scale``, 128 by default, the size the shipped model is trained at); the longer
side is then rounded to a multiple of 16 (8× spatial compression × 2×2 patches). Any other
``"WxH"`` is the model's own size and is rendered as asked: each side 32..1024 pixels, and at
most ``--max-pixels`` pixels per frame (the pipeline generates at the next multiple of 16 and
resizes back). The response's ``size`` echoes what was
asked; the rendered resolution is in the response's ``kinema`` object.

Seconds
-------
OpenAI's durations (``"4"``, ``"8"``, ``"12"``, and ``"16"``/``"20"`` for extensions) are
multiplied by ``--openai-seconds-scale`` (0.5 by default: "4" renders 2 s, "8" 4 s, "12" 6 s),
because the model is trained on short clips and a CPU renders them in seconds, not minutes. Any
other value (``"2"``, ``"2.5"``, ``"4.0"``) is the model's own duration in seconds, rendered as
asked. The frame count is ``round(seconds × fps)`` at the server's frame rate (the model's, 12 by
default; ``fps`` is an extra field); ``num_frames`` (an extra field) sets it directly. The response's ``seconds`` echoes the request.

Models
------
``model`` accepts the served model's name (``kinema-tiny`` for the shipped default, otherwise the
``--model`` folder's name), ``kinema``, and OpenAI's names (``sora-2``, ``sora-2-pro`` and their
dated variants), which all mean the served model. Anything else is a 400.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

OPENAI_SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
OPENAI_SECONDS = ("4", "8", "12", "16", "20")
OPENAI_MODELS = ("sora-2", "sora-2-pro")
DEFAULT_OPENAI_SIZE = "720x1280"
DEFAULT_OPENAI_SECONDS = "4"
MULTIPLE = 16
MIN_SIDE = 32
MAX_SIDE = 1024

_SIZE_RE = re.compile(r"^\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*$")


class SizeError(ValueError):
    """A size, duration or model value that cannot be served; str() is the user's message."""

    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


def _round_multiple(x: float, m: int = MULTIPLE) -> int:
    return max(m, int(math.floor(x / m + 0.5)) * m)


def parse_size(size: str | None, scale: int = 128, max_pixels: int = 512 * 512) -> tuple[int, int]:
    """(width, height) the model renders for a request's `size`; None means OpenAI's default."""
    if size is None or str(size).strip() == "":
        size = DEFAULT_OPENAI_SIZE
    text = str(size).strip()
    m = _SIZE_RE.match(text)
    if not m:
        raise SizeError(f"size must look like 'WIDTHxHEIGHT' (e.g. '1280x720' or '128x128'), got {size!r}", "size")
    w, h = int(m.group(1)), int(m.group(2))
    if f"{w}x{h}" in OPENAI_SIZES:
        short, long_ = min(w, h), max(w, h)
        s = _round_multiple(scale)
        l = _round_multiple(scale * long_ / short)
        return (l, s) if w >= h else (s, l)
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise SizeError(f"size {w}x{h}: each side must be between {MIN_SIDE} and {MAX_SIDE} "
                        f"(or use one of OpenAI's sizes {', '.join(OPENAI_SIZES)})", "size")
    if w * h > max_pixels:
        raise SizeError(f"size {w}x{h} has {w * h} pixels per frame; this server allows at most {max_pixels}", "size")
    return w, h


def parse_seconds(seconds: str | float | int | None, openai_scale: float = 0.5) -> float:
    """Seconds of video the model renders for a request's `seconds`; None means OpenAI's default."""
    if seconds is None or str(seconds).strip() == "":
        seconds = DEFAULT_OPENAI_SECONDS
    text = str(seconds).strip()
    if text in OPENAI_SECONDS:
        return float(text) * openai_scale
    try:
        value = float(text)
    except ValueError:
        raise SizeError(f"seconds must be a number (e.g. '4' or '2.5'), got {seconds!r}", "seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise SizeError(f"seconds must be a positive number, got {seconds!r}", "seconds")
    return value


def frames_for(seconds: float, fps: float) -> int:
    """Frame count for a duration: round(seconds × fps), at least 1."""
    return max(1, int(round(seconds * fps)))


@dataclass(frozen=True)
class ModelNames:
    served: str

    def resolve(self, requested: str | None) -> str:
        """The name echoed back for a requested model; raises SizeError for an unknown one."""
        if requested is None or str(requested).strip() == "":
            return self.served
        name = str(requested).strip()
        if name in (self.served, "kinema", "kinema-tiny") or name.startswith(OPENAI_MODELS):
            return name
        raise SizeError(f"unknown model {name!r}; this server serves {self.served!r} "
                        f"(also accepted: 'kinema', 'sora-2', 'sora-2-pro')", "model")
