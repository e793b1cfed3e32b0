"""Kinema diffusion."""
