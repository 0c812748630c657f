"""The ``ecrlink`` command line (Click for parsing, Rich for people's output)."""

from __future__ import annotations

from .app import cli, main

__all__ = ["cli", "main"]
