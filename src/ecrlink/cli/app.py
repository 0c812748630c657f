"""The root command group; each command lives in its own module and registers here.

``EcrGroup`` gives Click's own usage errors (unknown option, missing argument) the
exit code for bad input, through the one mapping in ``exit_codes``.
"""

from __future__ import annotations

from typing import Any

import click

from .. import __version__
from .demo import demo
from .exit_codes import EXIT_CODES_HELP, exit_status_for
from .journal_cmd import journal
from .payments import last, sale, settle, void
from .ping import ping
from .reconcile import reconcile_command
from .simulate import simulate

__all__ = ["EcrGroup", "cli", "main"]

def _recode(exc: click.ClickException) -> None:
    if isinstance(exc, click.UsageError):
        # Click declares exit_code on the class; each instance may carry its own.
        exc.exit_code = int(exit_status_for(exc))  # type: ignore[misc]


class EcrGroup(click.Group):
    """A Click group whose usage errors exit with ``ExitStatus.BAD_INPUT`` (4)."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        """Parse the group's own options; a usage error gets the bad-input code."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            _recode(exc)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; its usage errors get the bad-input code."""
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            _recode(exc)
            raise


@click.group(
    cls=EcrGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(__version__, prog_name="ecrlink")
def cli() -> None:
    """Drive Web ECR V201 card terminals (Ingenico iCT220/iWL220) from a cash register.

    Every command that talks to a terminal takes --terminal URL|NAME (or
    ECRLINK_TERMINAL, or default_terminal in the config file), --json and --lang vi|en.
    Try it without a terminal: ecrlink demo.
    """


cli.add_command(sale)
cli.add_command(void)
cli.add_command(settle)
cli.add_command(last)
cli.add_command(ping)
cli.add_command(journal)
cli.add_command(demo)
cli.add_command(simulate)
cli.add_command(reconcile_command)


def main() -> None:
    """Entry point of the ``ecrlink`` console script."""
    cli()
