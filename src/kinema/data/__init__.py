"""Kinema data."""
