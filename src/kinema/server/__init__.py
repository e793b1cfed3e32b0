"""Kinema server."""
