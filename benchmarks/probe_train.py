"""`kinema train dit` on a latent cache read through a change that isolates one part of a model.

- `--swap-hw`: each latent clip's height and width axes are swapped, captions unchanged, so
  "moves left" names a motion along the transformer's height axis and "moves up" one along its
  width axis. A model whose trouble with left/right lies in moving things along the width axis
  then fails on up/down instead; one whose trouble lies in reading the words still fails on
  left/right. Probe the result with `motion_words.py --model NAME=OUT/final --swapped NAME`,
  which runs it as swap(f(swap(x))) so its videos come out the right way round.
- `--rename-word OLD=NEW` (repeatable): every caption says NEW where it said the word OLD, so a
  model must learn a word it has never been trained on for something it already draws. Probe with
  `motion_words.py --rename-word OLD=NEW`, which writes its prompts the same way.

    python benchmarks/probe_train.py --swap-hw --config FILE.json --vae DIR --out OUT
    python benchmarks/probe_train.py --rename-word left=west --rename-word right=east --config FILE.json ...

Every other argument goes to `kinema train dit`. The config must train from a latent cache
(`data.latent_cache`: true), of square clips for `--swap-hw`, so the swapped latents keep the
cache's shape.
"""

from __future__ import annotations

import re
import sys

from torch import Tensor

TOOL = "probe_train"


def swap_hw(latents: Tensor) -> Tensor:
    """[..., h, w] -> [..., w, h], contiguous."""
    return latents.transpose(-1, -2).contiguous()


def parse_renames(words: list[str]) -> dict[str, str]:
    """OLD=NEW words (single words of letters) as a dict; ValueError naming a bad one."""
    renames = {}
    for word in words:
        old, sep, new = word.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z]+", old) or not re.fullmatch(r"[A-Za-z]+", new):
            raise ValueError(f"--rename-word wants OLD=NEW, two words of letters; got {word!r}")
        renames[old.lower()] = new.lower()
    return renames


def renames_or_exit(tool: str, words: list[str]) -> dict[str, str]:
    """`parse_renames`, exiting with a line naming `tool` for a bad pair."""
    try:
        return parse_renames(words)
    except ValueError as exc:
        sys.exit(f"{tool}: {exc}")


def rename_words(text: str, renames: dict[str, str]) -> str:
    """`text` with each whole word OLD (any case) replaced by NEW, all at once (so left=right and
    right=left swap the two)."""
    if not renames:
        return text
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, renames)) + r")\b", re.IGNORECASE)
    return pattern.sub(lambda m: renames[m.group(1).lower()], text)


def change_cache_entries(swap: bool, renames: dict[str, str]) -> None:
    """Make every `LatentCache` entry read in this process come back changed: h and w swapped,
    caption words renamed."""
    from kinema.data import latent_cache

    read = getattr(latent_cache.LatentCache.entry, "unchanged", latent_cache.LatentCache.entry)

    def entry(self, n: int) -> dict:
        item = read(self, n)
        if swap:
            latents = item["latents"]
            if latents.shape[-1] != latents.shape[-2]:
                sys.exit(f"{TOOL}: cache entry {n} is {latents.shape[-1]}x{latents.shape[-2]} latents; "
                         "--swap-hw needs square clips")
            item["latents"] = swap_hw(latents)
        item["caption"] = [rename_words(c, renames) for c in item["caption"]]
        return item

    entry.unchanged = read
    latent_cache.LatentCache.entry = entry


def _option(argv: list[str], name: str) -> str | None:
    """The value of `name VALUE` or `name=VALUE` in argv (the last one), or None."""
    value = None
    for i, word in enumerate(argv):
        if word == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif word.startswith(name + "="):
            value = word.split("=", 1)[1]
    return value


def check_config(argv: list[str], swap: bool) -> None:
    """Exit with a line naming the problem unless the run trains from a latent cache (of square
    clips, for a swap)."""
    from kinema.errors import KinemaError
    from kinema.train.config import resolve

    config = _option(argv, "--config")
    if config is None:
        sys.exit(f"{TOOL}: give --config FILE.json with data.latent_cache true (see the module note)")
    try:
        cfg = resolve("dit", _option(argv, "--preset"), config)
    except KinemaError as exc:
        sys.exit(f"{TOOL}: {exc}")
    if not cfg.data.latent_cache:
        sys.exit(f"{TOOL}: {config}: data.latent_cache must be true (the change is made on cached latents)")
    oblong = [b for b in cfg.data.buckets if b[0] != b[1]]
    if swap and oblong:
        sys.exit(f"{TOOL}: {config}: --swap-hw needs every data.buckets entry square; {oblong} are not")


def split_args(argv: list[str]) -> tuple[bool, dict[str, str], list[str]]:
    """(--swap-hw given, the --rename-word pairs, the arguments left for `kinema train dit`)."""
    swap, renames, rest = False, [], []
    words = iter(argv)
    for word in words:
        if word == "--swap-hw":
            swap = True
        elif word == "--rename-word":
            renames.append(next(words, ""))
        elif word.startswith("--rename-word="):
            renames.append(word.split("=", 1)[1])
        else:
            rest.append(word)
    return swap, renames_or_exit(TOOL, renames), rest


def main(argv: list[str] | None = None) -> int:
    from kinema.cli import main as kinema_main

    swap, renames, rest = split_args(list(sys.argv[1:] if argv is None else argv))
    if "--help" not in rest and "-h" not in rest:
        if not swap and not renames:
            sys.exit(f"{TOOL}: give --swap-hw or --rename-word OLD=NEW (otherwise use kinema train dit)")
        check_config(rest, swap)
    change_cache_entries(swap, renames)
    return kinema_main(["train", "dit", *rest])


if __name__ == "__main__":
    sys.exit(main())
