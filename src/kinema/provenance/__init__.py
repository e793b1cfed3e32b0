"""Kinema provenance."""
