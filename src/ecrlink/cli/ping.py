"""``ecrlink ping``: is the terminal there, and which one is it? Charges nothing.

It opens the link (HTTP connect or serial port), asks ``last trans`` and shows what
the terminal says about itself: TID, MID, serial number, batch, its last successful
transaction, the round-trip time, and whether it repeats requestIds (what recovery
can rely on). Nothing is written to the journal.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import click
from rich.text import Text

from ..protocol import Result
from .exit_codes import EXIT_CODES_HELP, ExitStatus
from .messages import text
from .options import Session, command_options
from .output import format_time, format_vnd, info_grid

__all__ = ["ping"]


@click.command("ping", epilog=EXIT_CODES_HELP)
@command_options(journal=False)
def ping(session: Session) -> ExitStatus:
    """Check the link to the terminal (last trans) without charging anything."""
    session.use_journal = False  # a query: nothing to write down
    with session.open_terminal() as pos:
        started = time.perf_counter()
        with session.waiting("waiting_terminal"):
            last = pos.last_transaction()
        took = time.perf_counter() - started
    report = _report(pos.terminal, last, took)
    if session.json:
        session.print_json(report)
    else:
        _show(session, report)
    return ExitStatus.OK


def _report(terminal: str, last: Result, seconds: float) -> dict[str, Any]:
    t = last.transaction
    # On firmware that repeats requestIds, last trans carries the original one; a
    # transaction without it may still have been made on the keypad: "not seen".
    echoes = t is not None and t.request_id is not None
    return {
        "terminal": terminal,
        "answered": True,
        "round_trip_ms": round(seconds * 1000, 1),
        "tid": t.tid if t else None,
        "mid": t.mid if t else None,
        "pos_serial": t.pos_serial if t else None,
        "batch_no": t.batch_no if t else None,
        "echoes_request_id": True if echoes else None,
        "last_transaction": t.to_dict() if t is not None and last.approved else None,
    }


def _show(session: Session, report: dict[str, Any]) -> None:
    lang = session.lang
    table = info_grid()
    table.add_row(text("ping_terminal", lang), report["terminal"])
    table.add_row(text("ping_round_trip", lang), f"{report['round_trip_ms']:.0f} ms")
    for key in ("tid", "mid", "pos_serial", "batch_no"):
        if report[key] is not None:
            table.add_row(text(f"ping_{key}", lang), str(report[key]))
    echo = text("ping_echo_yes" if report["echoes_request_id"] else "ping_echo_unseen", lang)
    table.add_row(text("ping_echo", lang), echo)
    last = report["last_transaction"]
    if last is None:
        table.add_row(text("ping_last", lang), text("ping_last_none", lang))
    else:
        when = format_time(datetime.fromisoformat(last["time"])) if last["time"] else ""
        table.add_row(text("ping_last", lang), Text(
            f"#{last['receipt_no']} {format_vnd(last['amount'])} {when}".strip()))
    session.out.print(Text(text("ping_ok", lang), style="bold green"))
    session.out.print(table)

