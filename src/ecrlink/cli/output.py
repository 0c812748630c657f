"""People's output: receipt panels, decline reasons, journal tables (Rich).

A receipt shows only what the spec allows a cashier's printout to show: the masked
card number, cardholder, approval code, refNo, TID, MID, batch, receipt number and
time (plus the amount). Nothing else from ``transInfo`` (EMV data, STAN, the raw
reply) is shown. User data goes through ``rich.text.Text`` so a ``[`` in an invoice
is never read as markup.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..journal import Entry, State
from ..payment import OPEN_STATES
from ..protocol import VIETNAM_TIME, Outcome, Result
from .messages import text

__all__ = [
    "RECEIPT_FIELDS",
    "entry_to_dict",
    "format_time",
    "format_vnd",
    "info_grid",
    "render_entries",
    "render_entry",
    "render_result",
    "result_panel",
]

RECEIPT_FIELDS = (
    "card_no", "cardholder", "approval_code", "ref_no", "tid", "mid", "batch_no",
    "receipt_no", "time",
)
"""The ``Transaction`` fields a receipt may print, in printing order."""

_LABEL = {
    "card_no": "card", "cardholder": "cardholder", "approval_code": "approval_code",
    "ref_no": "ref_no", "tid": "tid", "mid": "mid", "batch_no": "batch",
    "receipt_no": "receipt", "time": "time",
}

_STYLE = {
    Outcome.APPROVED: "green",
    Outcome.DECLINED: "red",
    Outcome.CANCELED: "yellow",
    Outcome.UNKNOWN: "bold red",
    Outcome.AMOUNT_MISMATCH: "bold red",
}

_LOUD_STATES = OPEN_STATES | {State.AMOUNT_MISMATCH}
"""Written in capitals in lists: they need a person."""
_STATE_STYLE = {
    State.APPROVED: "green",
    State.DECLINED: "red",
    State.CANCELED: "yellow",
    State.FAILED: "dim",
    State.PENDING: "bold magenta",
    State.SENT: "bold magenta",
    State.AMOUNT_MISMATCH: "bold white on red",
    State.IN_DOUBT: "bold white on red",
}


def format_vnd(amount: int | None) -> str:
    """``150000`` → ``150.000 VND`` (Vietnamese thousands separator)."""
    return "-" if amount is None else _thousands(amount) + " VND"


def format_time(moment: datetime | None) -> str:
    """Vietnam local time as ``dd/mm/yyyy HH:MM:SS`` (how receipts print it)."""
    if moment is None:
        return "-"
    if moment.tzinfo is not None:
        moment = moment.astimezone(VIETNAM_TIME)
    return moment.strftime("%d/%m/%Y %H:%M:%S")


def info_grid() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    return grid


def result_panel(result: Result, lang: str) -> Panel:
    """The panel for one answer: a receipt, or the reason and what to do next."""
    grid = info_grid()
    t = result.transaction
    if t is not None and t.amount is not None:
        grid.add_row(text("amount", lang), Text(format_vnd(t.amount)))
    charged = result.outcome in (Outcome.APPROVED, Outcome.AMOUNT_MISMATCH)
    if result.outcome is Outcome.AMOUNT_MISMATCH:
        # The receipt below is what was charged: the cashier voids it by its number.
        grid.add_row(text("reason", lang), Text(result.message(lang), style="bold red"))
        grid.add_row(text("next_step", lang), Text(result.advice(lang)))
    if charged and t is not None:
        for name in RECEIPT_FIELDS:
            value = getattr(t, name)
            if value is None:
                continue
            shown = format_time(value) if name == "time" else str(value).strip()
            grid.add_row(text(_LABEL[name], lang), Text(shown))
    elif not charged:
        if result.return_code is not None:
            grid.add_row(text("return_code", lang), Text(result.return_code))
        grid.add_row(text("reason", lang), Text(result.message(lang)))
        grid.add_row(text("next_step", lang), Text(result.advice(lang)))
        if result.outcome is Outcome.UNKNOWN and result.detail:
            grid.add_row(text("detail", lang), Text(result.detail))
    if result.journal_id is not None:
        grid.add_row(text("journal_id", lang), Text(str(result.journal_id)))
    if result.unrecorded:
        grid.add_row(Text("!", style="bold red"),
                     Text(f"{text('unrecorded', lang)}: {result.unrecorded}", style="bold red"))
    body: Any = grid
    if result.outcome is Outcome.UNKNOWN and result.journal_id is not None:
        hint = Text(text("resolve_hint", lang, id=result.journal_id), style="bold")
        body = Group(grid, Text(""), hint)
    style = _STYLE[result.outcome]
    title = Text(text(f"title_{result.outcome.value}", lang), style=f"bold {style}")
    return Panel(body, title=title, border_style=style, box=box.ROUNDED, expand=False)


def render_result(console: Console, result: Result, lang: str) -> None:
    """Print one answer for people."""
    console.print(result_panel(result, lang))


def entry_to_dict(entry: Entry) -> dict[str, Any]:
    """A journal entry as JSON-ready data (card masked; the raw reply left out)."""
    return {
        "id": entry.id,
        "terminal": entry.terminal,
        "command": entry.command,
        "state": entry.state.value,
        "request_id": entry.request_id,
        "client_id": entry.client_id,
        "amount": entry.amount,
        "charged_amount": entry.charged_amount,
        "invoice": entry.invoice or None,
        "reference": entry.reference or None,
        "fields": list(entry.fields),
        "created_at": entry.created_at.isoformat(),
        "updated_at": entry.updated_at.isoformat(),
        "receipt_no": entry.receipt_no,
        "void_of": entry.void_of,
        "approval_code": entry.approval_code,
        "ref_no": entry.ref_no,
        "card_no": entry.card_no,
        "card_last4": entry.card_last4,
        "tid": entry.tid,
        "mid": entry.mid,
        "batch_no": entry.batch_no,
        "stan": entry.stan,
        "trans_time": entry.trans_time.isoformat() if entry.trans_time else None,
        "return_code": entry.return_code,
        "resolved_by": entry.resolved_by.value if entry.resolved_by else None,
        "resolved_who": entry.resolved_who,
        "note": entry.note,
    }


def _thousands(amount: int | None) -> str:
    return "-" if amount is None else f"{amount:,}".replace(",", ".")


def _short_time(moment: datetime) -> str:
    return moment.astimezone(VIETNAM_TIME).strftime("%d/%m %H:%M:%S")


def _state_text(state: State) -> Text:
    label = state.value.upper() if state in _LOUD_STATES else state.value
    return Text(label, style=_STATE_STYLE[state])


def render_entries(console: Console, entries: list[Entry], lang: str, path: str) -> None:
    """The journal as a table; in-doubt rows stand out (reverse red, and counted below)."""
    if not entries:
        console.print(Text(text("journal_empty", lang)))
        return
    terminals = sorted({e.terminal for e in entries})
    # One terminal (the usual shop): name it in the title and keep its column out, so
    # the table fits the 80 columns a cashier's console usually has.
    title = text("journal_title", lang, path=path)
    if len(terminals) == 1:
        title += f"\n{text('col_terminal', lang)}: {terminals[0]}"
    table = Table(title=Text(title), box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    keys = [
        ("col_id", "right"), ("col_created", "left"), ("col_terminal", "left"),
        ("col_command", "left"), ("col_state", "left"), ("col_amount", "right"),
        ("col_invoice", "left"), ("col_receipt", "left"), ("col_card", "left"),
    ]
    if len(terminals) == 1:
        keys.remove(("col_terminal", "left"))
    for key, justify in keys:
        table.add_column(
            text(key, lang), justify=justify,  # type: ignore[arg-type]
            overflow="fold", no_wrap=key != "col_terminal",
        )
    doubtful = 0
    for e in entries:
        open_ = e.state in OPEN_STATES
        doubtful += open_
        cells: list[str | Text] = [
            str(e.id), _short_time(e.created_at), Text(e.terminal), e.command,
            _state_text(e.state), _thousands(e.amount), Text(e.invoice),
            Text(e.receipt_no or e.void_of or ""),
            Text(f"…{e.card_last4}" if e.card_last4 else ""),
        ]
        if len(terminals) == 1:
            del cells[2]
        table.add_row(*cells, style="bold" if open_ else None)
    console.print(table)
    if doubtful:
        console.print(Text(text("journal_in_doubt_count", lang, count=doubtful), style="bold red"))


def render_entry(
    console: Console, entry: Entry, history: list[dict[str, Any]], lang: str
) -> None:
    """One journal entry in full, with its history."""
    grid = info_grid()
    data = entry_to_dict(entry)
    for key, value in data.items():
        if value is None or value == "" or key == "fields":
            continue
        if key == "state":
            grid.add_row(key, _state_text(entry.state))
        elif key in ("amount", "charged_amount"):
            grid.add_row(key, Text(format_vnd(value)))
        elif key in ("created_at", "updated_at", "trans_time"):
            grid.add_row(key, Text(format_time(datetime.fromisoformat(value))))  # VN time
        else:
            grid.add_row(key, Text(str(value)))
    if any(entry.fields):
        grid.add_row("fields", Text(" | ".join(f"F{i}={v}" for i, v in
                                               enumerate(entry.fields, 1) if v)))
    table = Table(title=Text(text("history", lang)), box=box.SIMPLE_HEAD)
    for column in ("at", "state", "by", "who", "note"):
        table.add_column(column)
    for row in history:
        table.add_row(Text(format_time(datetime.fromisoformat(row["at"]))),
                      *(Text(str(row[c] or "")) for c in ("state", "by", "who", "note")))
    style = _STATE_STYLE[entry.state]
    console.print(Panel(grid, title=Text(f"#{entry.id}", style="bold"), border_style=style,
                        expand=False))
    console.print(table)
    if entry.state in OPEN_STATES:
        console.print(Text(text("resolve_hint", lang, id=entry.id), style="bold red"))
