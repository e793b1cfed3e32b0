"""Kinema studio."""
