"""Kinema training: the VAE and DiT trainer (one process or torchrun DDP/FSDP), presets, EMA,
exact-resume checkpoints. Entry points: `kinema train` or `kinema.train.train(config)`."""

from .config import DataConfig, OptimConfig, TrainConfig, preset, resolve

__all__ = ["TrainConfig", "OptimConfig", "DataConfig", "preset", "resolve", "train"]


def train(cfg: TrainConfig, resume: bool = False, quiet: bool = False) -> dict:
    from .trainer import train as _train

    return _train(cfg, resume=resume, quiet=quiet)
