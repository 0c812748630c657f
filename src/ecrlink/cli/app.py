"""The root command group; each command lives in its own module and registers here."""

from __future__ import annotations

import click

from .. import __version__

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ecrlink")
def cli() -> None:
    """Drive Web ECR V201 card terminals (Ingenico iCT220/iWL220) from a cash register."""


def main() -> None:
    """Entry point of the ``ecrlink`` console script."""
    cli()
