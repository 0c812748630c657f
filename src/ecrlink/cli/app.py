"""The root command group; each command lives in its own module, loaded when run.

``EcrGroup`` gives Click's own usage errors (unknown option, missing argument) the
exit code for bad input, through the one mapping in ``exit_codes``, and imports a
command's module only when that command runs: ``ecrlink sale`` never loads the
simulator, reconciliation or the bridge, and ``ecrlink --help`` lists the commands
from the table below without importing any of them (``tests/cli/test_start.py``
checks that each line matches the command's own help).
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

import click

from .._version import __version__
from .exit_codes import EXIT_CODES_HELP, exit_status_for

__all__ = ["COMMANDS", "EcrGroup", "cli", "main"]


class LazyCommand(NamedTuple):
    """Where a command lives, and the one line ``ecrlink --help`` shows for it."""

    module: str
    attribute: str
    summary: str
    """The first paragraph of the command's docstring (a test keeps them equal)."""


COMMANDS: dict[str, LazyCommand] = {
    "sale": LazyCommand(
        "payments", "sale", "Charge AMOUNT VND on the card terminal and wait for the customer."),
    "void": LazyCommand(
        "payments", "void", "Cancel the sale with this RECEIPT number (current batch only)."),
    "settle": LazyCommand(
        "payments", "settle", "Close the terminal's batch (end-of-day settlement)."),
    "last": LazyCommand(
        "payments", "last", "Show the terminal's last successful transaction."),
    "ping": LazyCommand(
        "ping", "ping",
        "Check the link to the terminal (last trans) without charging anything."),
    "journal": LazyCommand(
        "journal_cmd", "journal",
        "The journal: every payment command, what became of it, and what is in doubt."),
    "demo": LazyCommand(
        "demo", "demo",
        "Play a short business day on the built-in simulator and check every step."),
    "simulate": LazyCommand(
        "simulate", "simulate",
        "Run simulated Web ECR terminals (HTTP and/or serial lines) until stopped."),
    "reconcile": LazyCommand(
        "reconcile", "reconcile_command",
        "Match card payments to invoices against the bank's statement (đối soát)."),
    "serve": LazyCommand(
        "serve", "serve",
        "Run the HTTP bridge for web, Android and .NET registers (ecrlink[serve])."),
}


def _recode(exc: click.ClickException) -> None:
    if isinstance(exc, click.UsageError):
        # Click declares exit_code on the class; each instance may carry its own.
        exc.exit_code = int(exit_status_for(exc))  # type: ignore[misc]


class EcrGroup(click.Group):
    """A Click group whose usage errors exit with ``ExitStatus.BAD_INPUT`` (4) and
    whose subcommands (``COMMANDS``) are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command, in the table's order."""
        return [*COMMANDS, *sorted(set(self.commands) - set(COMMANDS))]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import the command's module on first use."""
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            where = COMMANDS[cmd_name]
            module = importlib.import_module(f"{__package__}.{where.module}")
            self.add_command(getattr(module, where.attribute), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help``, from the table: nothing is imported."""
        names = self.list_commands(ctx)
        # Click's own rule: the width left beside the longest name, "..." past it;
        # a bare Command carrying the summary applies it.
        limit = formatter.width - 6 - max(map(len, names))
        rows = [
            (name, (click.Command(name, help=COMMANDS[name].summary) if name in COMMANDS
                    else self.commands[name]).get_short_help_str(limit))
            for name in names
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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


def main() -> None:
    """Entry point of the ``ecrlink`` console script."""
    cli()
