"""``ecrlink sale``, ``void``, ``settle`` and ``last``: one command to one terminal.

Each prints the answer (a receipt, or why not and what to do) or, with ``--json``,
exactly ``Result.to_dict()``; the exit code says the outcome (see ``exit_codes``).
Input is checked before anything is sent, so a bad field costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import click

from ..client import DEFAULT_CLIENT_ID, Terminal
from ..protocol import Result, Sale, check_receipt_no
from ..protocol.field_texts import field_error
from .exit_codes import EXIT_CODES_HELP, ExitStatus, exit_status_for_result
from .options import Session, command_options

__all__ = ["last", "parse_amount", "parse_field", "sale", "settle", "void"]

# 150000, or grouped by thousands with . , _ or a space: 150.000, 1,250,000.
_AMOUNT = re.compile(r"\d+|\d{1,3}(?:([.,_ ])\d{3})(?:\1\d{3})*")


def parse_amount(value: str) -> int:
    """A whole number of VND from the command line; ``FieldError`` naming ``amount``."""
    text = value.strip()
    if text.startswith("-"):
        raise field_error("amount", "not_positive", value)
    if not _AMOUNT.fullmatch(text):
        raise field_error("amount", "amount_format", value)
    return int(re.sub(r"[.,_ ]", "", text))


def parse_field(value: str) -> tuple[int, str]:
    """``N=TEXT`` for ``--field``; N is 1..5."""
    number, sep, content = value.partition("=")
    if not sep or not number.strip().isdigit() or not 1 <= int(number) <= 5:
        raise field_error("--field", "field_option", value)
    return int(number), content


def _run(
    session: Session,
    send: Callable[[Terminal], Result],
    waiting: str,
    *,
    transliterate: bool = False,
) -> ExitStatus:
    """Send through a ``Terminal``, turn Ctrl-C into 'in doubt', print the answer."""
    with session.open_terminal(transliterate=transliterate) as pos:
        try:
            with session.waiting(waiting):
                result = send(pos)
        except KeyboardInterrupt:
            return _interrupted(session, pos)
    if session.json:
        session.print_json({**result.to_dict(session.lang), **session.recovered_json()})
    else:
        from .output import render_result  # Rich: only once there is something to show

        render_result(session.out, result, session.lang)
    return exit_status_for_result(result)


def _interrupted(session: Session, pos: Terminal) -> ExitStatus:
    """Ctrl-C: the client has written the entry as in doubt; say so, exit 3."""
    ids = [e.id for e in pos.journal.unresolved(pos.terminal)] if pos.journal else []
    if not ids and pos.journal is not None:
        # Nothing was journaled as open: the request never left (e.g. waiting for the lock).
        session.env.err.write("\n")
        return ExitStatus.INTERRUPTED
    shown = ", ".join(map(str, ids)) if ids else "?"
    session.env.err.write("\n" + session.t("interrupted", id=shown) + "\n")
    session.env.err.flush()
    return ExitStatus.UNKNOWN


_EPILOG = EXIT_CODES_HELP


@click.command(
    "sale", epilog=_EPILOG,
    # A negative amount must reach our check (one line naming the field), not be
    # taken for an unknown option by Click.
    context_settings={"ignore_unknown_options": True},
)
@click.argument("amount", metavar="AMOUNT")
@click.option("--invoice", metavar="X", help="Invoice number, sent as F3 (max 20 characters).")
@click.option("--ref", "reference", metavar="Y", help="Reference code, sent as F5 (max 20).")
@click.option(
    "--field", "fields", metavar="N=TEXT", multiple=True,
    help="A free print field F1..F5 (repeatable), e.g. --field 4='Ban 12'.",
)
@click.option(
    "--transliterate", is_flag=True,
    help="Remove Vietnamese diacritics from fields instead of refusing them.",
)
@click.option(
    "--force", is_flag=True,
    help="Charge even though an earlier payment is still in doubt (check it first!).",
)
@click.option(
    "--allow-duplicate", is_flag=True,
    help="Charge although this --invoice was already paid today (e.g. a split payment).",
)
@command_options()
def sale(
    session: Session,
    amount: str,
    invoice: str | None,
    reference: str | None,
    fields: tuple[str, ...],
    transliterate: bool,
    force: bool,
    allow_duplicate: bool,
) -> ExitStatus:
    """Charge AMOUNT VND on the card terminal and wait for the customer."""
    value = parse_amount(amount)
    extra = dict(parse_field(f) for f in fields)
    # Build the request once before connecting: every field is checked and nothing
    # is sent (nor journaled) if one is wrong.
    Sale.build(
        value, request_id="check", client_id=session.client_id or DEFAULT_CLIENT_ID,
        invoice=invoice, reference=reference, fields=extra or None,
        transliterate=transliterate,
    )

    def send(pos: Terminal) -> Result:
        return pos.sale(
            value, invoice=invoice, reference=reference, fields=extra or None, force=force,
            allow_duplicate=allow_duplicate,
        )

    return _run(session, send, "waiting_card", transliterate=transliterate)


@click.command("void", epilog=_EPILOG)
@click.argument("receipt", metavar="RECEIPT")
@command_options()
def void(session: Session, receipt: str) -> ExitStatus:
    """Cancel the sale with this RECEIPT number (current batch only)."""
    check_receipt_no(receipt, "receipt")
    return _run(session, lambda pos: pos.void(receipt), "waiting_terminal")


@click.command("settle", epilog=_EPILOG)
@click.option(
    "--no", "decline", is_flag=True,
    help="Send settle|NO (ask the terminal, do not close the batch).",
)
@command_options()
def settle(session: Session, decline: bool) -> ExitStatus:
    """Close the terminal's batch (end-of-day settlement)."""
    return _run(session, lambda pos: pos.settle(confirm=not decline), "waiting_terminal")


@click.command("last", epilog=_EPILOG)
@command_options()
def last(session: Session) -> ExitStatus:
    """Show the terminal's last successful transaction."""
    return _run(session, lambda pos: pos.last_transaction(), "waiting_terminal")
