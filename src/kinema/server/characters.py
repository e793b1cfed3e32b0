"""Characters: a named reference clip whose look is kept across shots.

`POST /v1/videos/characters` takes a name and a short clip. The server reads the clip with the
world analyzer (`kinema.world.analyze.analyze_video`) and records the main object's look - size,
colour and shape, e.g. "a large red circle". A later prompt from the same key that names the
character (whole word, case-sensitive: "Bob moves left") has the name replaced by the look ("a
large red circle moves left") before generation, so the character looks the same in every shot.
The video's `prompt` keeps what the user wrote; the prompt actually rendered is in
``kinema.effective_prompt``.
"""

from __future__ import annotations

import re
from typing import Iterable

class CharacterError(ValueError):
    """The reference clip holds no character the analyzer can describe."""


def describe(facts: dict) -> str:
    """'a large red circle' from the analyzer's facts: the object seen longest (then the largest)."""
    objects = [o for o in facts.get("objects") or [] if isinstance(o, dict)]
    if not objects:
        raise CharacterError("no character found in the clip: the analyzer sees no object in it")

    def seen(o: dict) -> tuple[int, int]:
        track = o.get("track") or []
        return (sum(1 for p in track if p is not None), 1 if o.get("size") == "large" else 0)

    main = max(objects, key=seen)
    words = [str(main[k]) for k in ("size", "color", "shape") if main.get(k)]
    if not words:
        raise CharacterError("no character found in the clip: the analyzer could not describe its object")
    return "a " + " ".join(words)


def analyze_clip(video) -> tuple[dict, str]:
    """(facts, look) for a reference clip (a kinema.Video)."""
    from ..world.analyze import analyze_video

    facts = analyze_video(video)
    return facts, describe(facts)


def substitute(prompt: str, characters: Iterable[tuple[str, str]]) -> str:
    """Replace each character's name in the prompt by its look ("Bob moves left" -> "a large red
    circle moves left"); longer names first. An article right before the name ("the Bob") is
    dropped, since the look brings its own."""
    out = prompt
    for name, look in sorted(characters, key=lambda c: -len(c[0])):
        if not name.strip():
            continue
        pattern = re.compile(r"(?:\b(?:a|an|the|A|An|The)\s+)?(?<![\w-])" + re.escape(name) + r"(?![\w-])")
        out = pattern.sub(lambda m, look=look: look, out)
    return out
