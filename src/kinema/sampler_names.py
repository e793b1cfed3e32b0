"""The samplers' names and the parsing of sampling options, in a module without torch, so the
command line can offer and read them without paying torch's import at start-up
(`kinema.diffusion.sampling` implements and checks them)."""

SAMPLERS = ("euler", "heun", "multistep", "stochastic")


def parse_guidance_interval(text: str) -> tuple[float, float]:
    """'LO,HI' from the command line -> (lo, hi); the pipeline checks the range."""
    parts = str(text).split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), float(parts[1])
    except ValueError:
        import argparse

        raise argparse.ArgumentTypeError(f"a guidance interval is two times LO,HI (e.g. 0,0.8), got {text!r}") \
            from None
