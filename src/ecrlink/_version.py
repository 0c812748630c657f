"""The package version, in a module of its own so the CLI can read it cheaply."""

__version__ = "0.1.0"
