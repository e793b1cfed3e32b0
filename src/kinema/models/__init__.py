"""Kinema models."""
