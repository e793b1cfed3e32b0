"""`kinema train dit` on a latent cache whose height and width axes are swapped.

Captions stay as they are, so "moves left" now names a motion along the transformer's height
axis and "moves up" one along its width axis. Trained this way, a model whose trouble with
left/right lies in the words still fails on left/right; one whose trouble lies in moving things
along the width axis now fails on up/down instead. Probe the result with
`benchmarks/motion_words.py --model NAME=OUT/final --swapped NAME`, which runs it as
swap(f(swap(x))) so its videos come out the right way round.

    python benchmarks/axis_swap_train.py --config FILE.json --vae DIR --out OUT

Any `kinema train dit` arguments may be given; the config must train from a latent cache
(`data.latent_cache`: true) of square clips, so the swapped latents keep the cache's shape.
"""

from __future__ import annotations

import sys

from torch import Tensor


def swap_hw(latents: Tensor) -> Tensor:
    """[..., h, w] -> [..., w, h], contiguous."""
    return latents.transpose(-1, -2).contiguous()


def swap_cache_entries() -> None:
    """Make every `LatentCache` entry read in this process come back with h and w swapped."""
    from kinema.data import latent_cache

    read = latent_cache.LatentCache.entry
    if getattr(read, "swaps_hw", False):
        return

    def entry(self, n: int) -> dict:
        item = read(self, n)
        latents = item["latents"]
        if latents.shape[-1] != latents.shape[-2]:
            sys.exit(f"axis_swap_train: cache entry {n} is {latents.shape[-1]}x{latents.shape[-2]} latents; "
                     "swapping needs square clips")
        item["latents"] = swap_hw(latents)
        return item

    entry.swaps_hw = True
    entry.unswapped = read
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


def check_config(argv: list[str]) -> None:
    """Exit with a line naming the problem unless the run trains from a latent cache of square clips."""
    from kinema.errors import KinemaError
    from kinema.train.config import resolve

    config = _option(argv, "--config")
    if config is None:
        sys.exit("axis_swap_train: give --config FILE.json with data.latent_cache true (see the module note)")
    try:
        cfg = resolve("dit", _option(argv, "--preset"), config)
    except KinemaError as exc:
        sys.exit(f"axis_swap_train: {exc}")
    if not cfg.data.latent_cache:
        sys.exit(f"axis_swap_train: {config}: data.latent_cache must be true (the swap is made on cached latents)")
    oblong = [b for b in cfg.data.buckets if b[0] != b[1]]
    if oblong:
        sys.exit(f"axis_swap_train: {config}: data.buckets must all be square; {oblong} are not")


def main(argv: list[str] | None = None) -> int:
    from kinema.cli import main as kinema_main

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--help" not in argv and "-h" not in argv:
        check_config(argv)
    swap_cache_entries()
    return kinema_main(["train", "dit", *argv])


if __name__ == "__main__":
    sys.exit(main())
