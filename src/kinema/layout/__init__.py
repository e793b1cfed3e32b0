"""Scene layouts: what the transformer is told about where each object is and what it looks like.

A layout is a few channels on the latent grid (`features`). Training reads them off the world's
scene specs; generation gets them from the scene planner (`planner`), a small network that reads
the prompt's text-encoder states, and the placement prior (`placement`), which puts the planned
objects in the frame as the prompt's relation asks.
"""

from .features import LAYOUT_CHANNELS, layout_batch, layout_channels, layout_for_spec, outline_side

__all__ = ["LAYOUT_CHANNELS", "layout_batch", "layout_channels", "layout_for_spec", "outline_side"]
