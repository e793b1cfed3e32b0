"""Kinema train."""
