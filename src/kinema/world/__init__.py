"""The procedural world: scene specs, renderer, captions, sampler, analyzer."""

from .spec import ObjectSpec, SceneSpec, SpecError
from .render import render, render_video
from .captions import caption, canonical_caption
from .sample import sample_spec, sample_specs

__all__ = ["ObjectSpec", "SceneSpec", "SpecError", "render", "render_video", "caption",
           "canonical_caption", "sample_spec", "sample_specs"]
