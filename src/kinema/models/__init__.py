"""Kinema models: the causal video autoencoder, the spacetime diffusion transformer and the
frozen text encoder. One readable file each; a config dataclass per trainable network."""

from .dit import DiTConfig, VideoDiT
from .text import TextEncoder
from .vae import CausalVideoVAE, ConfigError, VAEConfig

__all__ = ["CausalVideoVAE", "VAEConfig", "VideoDiT", "DiTConfig", "TextEncoder", "ConfigError"]
