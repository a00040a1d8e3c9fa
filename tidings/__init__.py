"""Tidings: a real-time messaging gateway."""

__version__ = "0.1.0"
