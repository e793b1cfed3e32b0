"""Kinema eval."""
