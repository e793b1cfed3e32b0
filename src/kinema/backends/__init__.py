"""Kinema backends."""
