"""Kinema: text-to-video with a causal video autoencoder and a spacetime diffusion transformer."""

from __future__ import annotations

from .video import Video, VideoError

__version__ = "0.1.0"
__all__ = ["Video", "VideoError", "Pipeline", "load_pipeline", "__version__"]


def __getattr__(name: str):
    # The pipeline pulls in torch and transformers; import it only when asked for.
    if name in ("Pipeline", "load_pipeline"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'kinema' has no attribute {name!r}")
