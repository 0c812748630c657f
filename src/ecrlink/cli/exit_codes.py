"""The exit codes of ``ecrlink``, and the one function that maps an outcome to one.

Cash register software calls ``ecrlink`` and branches on the exit code, so each code
means one thing for every command, and this module is the only place that decides it
(``exit_status_for``), ``ecrlink reconcile`` included.
"""

from __future__ import annotations

import enum

import click

from .._exceptions import (
    ConfigError,
    ConnectError,
    ConnectTimeout,
    DuplicateInvoice,
    FieldError,
    InDoubtPending,
    JournalError,
    LocalProtocolError,
    NotTerminalReply,
    ReconcileError,
    TerminalBusy,
)
from ..protocol import Outcome, Result

__all__ = ["EXIT_CODES_HELP", "ExitStatus", "exit_status_for", "exit_status_for_result"]


class ExitStatus(enum.IntEnum):
    """What an ``ecrlink`` exit code means (the same for every command)."""

    OK = 0
    DECLINED = 1
    CANCELED = 2
    UNKNOWN = 3
    BAD_INPUT = 4
    UNREACHABLE = 5
    BUSY = 6
    IN_DOUBT_PENDING = 7
    JOURNAL_ERROR = 8
    ERROR = 9
    DISCREPANCIES = 10
    AMOUNT_MISMATCH = 11
    DUPLICATE_INVOICE = 12
    INTERRUPTED = 130

    @property
    def meaning(self) -> str:
        """One line saying what the code means (for ``--help`` and the docs)."""
        return _MEANINGS[self]


_MEANINGS = {
    ExitStatus.OK: "approved, or done",
    ExitStatus.DECLINED: "declined by the bank or the terminal",
    ExitStatus.CANCELED: "canceled at the terminal (customer or cashier)",
    ExitStatus.UNKNOWN: "payment outcome unknown: in doubt (also after Ctrl-C)",
    ExitStatus.BAD_INPUT: "bad input (field, option, config); nothing was sent",
    ExitStatus.UNREACHABLE: "terminal unreachable; nothing was sent",
    ExitStatus.BUSY: "terminal busy with another transaction; nothing was sent",
    ExitStatus.IN_DOUBT_PENDING: "refused: an earlier payment is still in doubt",
    ExitStatus.JOURNAL_ERROR: "journal error",
    ExitStatus.ERROR: "other error (bad reply from the terminal, failed demo step...)",
    ExitStatus.DISCREPANCIES: "reconcile: rows need a person (bank_only, duplicate, "
    "ecr_only, amount_mismatch)",
    ExitStatus.AMOUNT_MISMATCH: "approved for ANOTHER amount than requested: void it, "
    "charge again",
    ExitStatus.DUPLICATE_INVOICE: "refused: this invoice was already paid today "
    "(--allow-duplicate to charge it again); nothing was sent",
    ExitStatus.INTERRUPTED: "interrupted (Ctrl-C) while no payment was under way",
}


_OUTCOME_STATUS = {
    Outcome.APPROVED: ExitStatus.OK,
    Outcome.DECLINED: ExitStatus.DECLINED,
    Outcome.CANCELED: ExitStatus.CANCELED,
    Outcome.UNKNOWN: ExitStatus.UNKNOWN,
    Outcome.AMOUNT_MISMATCH: ExitStatus.AMOUNT_MISMATCH,
}


def exit_status_for(exc: BaseException) -> ExitStatus:
    """The exit code for an exception that ended a command: the one mapping."""
    # Order matters: FieldError is also a ValueError, ConnectTimeout also a TimeoutError.
    if isinstance(
        exc, FieldError | ConfigError | LocalProtocolError | ReconcileError | click.UsageError
    ):
        return ExitStatus.BAD_INPUT
    if isinstance(exc, ConnectError | ConnectTimeout | NotTerminalReply):
        return ExitStatus.UNREACHABLE
    if isinstance(exc, TerminalBusy):
        return ExitStatus.BUSY
    if isinstance(exc, InDoubtPending):
        return ExitStatus.IN_DOUBT_PENDING
    if isinstance(exc, DuplicateInvoice):
        return ExitStatus.DUPLICATE_INVOICE
    if isinstance(exc, JournalError):
        return ExitStatus.JOURNAL_ERROR
    if isinstance(exc, KeyboardInterrupt):
        # Only reached when a payment may have been under way; see payments.py.
        return ExitStatus.UNKNOWN
    # Any other EcrError (a bad reply, ...), a ClickException, or a bug.
    return ExitStatus.ERROR


def exit_status_for_result(result: Result) -> ExitStatus:
    """The exit code for a command that got an answer (approved, declined, ...)."""
    return _OUTCOME_STATUS[result.outcome]


EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(
    f"  {status.value}  {status.meaning}" for status in ExitStatus
)
"""The table for ``--help`` epilogs (``\\b`` stops Click from rewrapping it)."""
