"""People's output: receipt panels, decline reasons, journal tables (Rich).

A receipt shows only what the spec allows a cashier's printout to show: the masked
card number, cardholder, approval code, refNo, TID, MID, batch, receipt number and
time (plus the amount). Nothing else from ``transInfo`` (EMV data, STAN, the raw
reply) is shown. User data goes through ``rich.text.Text`` so a ``[`` in an invoice
is never read as markup.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import IO, TYPE_CHECKING, Any

from rich import box
from rich.cells import cell_len
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..journal import Entry, State
from ..payment import OPEN_STATES
from ..protocol import VIETNAM_TIME, Outcome, Result
from .messages import text
from .streams import SafeStream

if TYPE_CHECKING:  # not at run time: plain journal commands never load the chain's code
    from ..journal.central import SiteEntry

__all__ = [
    "LIST_CHUNK",
    "LIST_COLUMNS",
    "RECEIPT_FIELDS",
    "ListColumn",
    "entry_to_dict",
    "fit_widths",
    "format_time",
    "format_vnd",
    "info_grid",
    "render_entries",
    "render_entry",
    "render_result",
    "result_panel",
    "row_to_dict",
    "write_entries_json",
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


# --- journal lists -------------------------------------------------------------------

LIST_CHUNK = 500
"""Entries laid out and written at a time by a list (``journal list --all``)."""

_GAP = "  "
_CUT_MIN = 6
"""A column that may be cut keeps at least this many cells (``ht…:80``)."""


@dataclass(frozen=True, slots=True)
class ListColumn:
    """One column of a journal list and what it may give up on a narrow console."""

    key: str
    """The header's message key."""
    right: bool
    """Right-justified (numbers)."""
    cut: bool
    """May be shortened with "…" (a long terminal URL). No other column ever is:
    the id above all, the number a cashier types into ``journal resolve``."""
    drop: int
    """0: always shown; otherwise left out, lowest first, when the line does not fit."""


LIST_COLUMNS = (
    ListColumn("col_id", right=True, cut=False, drop=0),
    ListColumn("col_created", right=False, cut=False, drop=0),
    ListColumn("col_terminal", right=False, cut=True, drop=4),
    ListColumn("col_command", right=False, cut=False, drop=3),
    ListColumn("col_state", right=False, cut=False, drop=0),
    ListColumn("col_amount", right=True, cut=False, drop=0),
    ListColumn("col_invoice", right=False, cut=False, drop=5),
    ListColumn("col_receipt", right=False, cut=False, drop=2),
    ListColumn("col_card", right=False, cut=False, drop=1),
)


def _line_width(widths: Sequence[int | None]) -> int:
    shown = [w for w in widths if w is not None]
    return sum(shown) + len(_GAP) * max(0, len(shown) - 1)


def fit_widths(
    natural: Sequence[int], columns: Sequence[ListColumn], width: int
) -> list[int | None]:
    """Column widths for a console ``width`` cells wide; None for a column left out.

    Each column gets its ``natural`` width if the line fits. Otherwise the columns that
    may be cut give up cells, widest first, down to a few; if that is not enough, whole
    columns are left out in their ``drop`` order (the others getting their width back
    each time). A column that is not cut keeps its full width, even if the line is then
    wider than the console (a console too narrow for the id, time, state and amount).
    """
    order = sorted((c.drop, i) for i, c in enumerate(columns) if c.drop)
    widths: list[int | None] = list(natural)
    for dropped in range(len(order) + 1):
        gone = {i for _, i in order[:dropped]}
        widths = [None if i in gone else w for i, w in enumerate(natural)]
        while _line_width(widths) > width:
            shrinkable = [i for i, c in enumerate(columns)
                          if c.cut and (w := widths[i]) is not None and w > _CUT_MIN]
            if not shrinkable:
                break
            widest = max(shrinkable, key=lambda i: widths[i] or 0)
            widths[widest] = (widths[widest] or 0) - 1
        if _line_width(widths) <= width:
            break
    return widths


SITE_COLUMN = ListColumn("col_site", right=False, cut=False, drop=0)
"""Head office's lists (``SiteEntry`` rows) start with the store: never cut, never left
out, as the id beside it is that store's own journal id."""


def _unpack(row: Entry | SiteEntry) -> tuple[str | None, Entry]:
    return (None, row) if isinstance(row, Entry) else (row.site, row.entry)


def row_to_dict(row: Entry | SiteEntry) -> dict[str, Any]:
    """``entry_to_dict``; a head office row starts with its ``site``."""
    site, entry = _unpack(row)
    data = entry_to_dict(entry)
    return data if site is None else {"site": site, **data}


def _cells(entry: Entry) -> list[tuple[str, str | None]]:
    """One entry's cells in ``LIST_COLUMNS`` order, with their styles."""
    loud = entry.state in _LOUD_STATES
    return [
        (str(entry.id), None),
        (_short_time(entry.created_at), None),
        (entry.terminal, None),
        (entry.command, None),
        (entry.state.value.upper() if loud else entry.state.value, _STATE_STYLE[entry.state]),
        (_thousands(entry.amount), None),
        (entry.invoice, None),
        (entry.receipt_no or entry.void_of or "", None),
        (f"…{entry.card_last4}" if entry.card_last4 else "", None),
    ]


def _fit(value: str, width: int, column: ListColumn) -> str:
    size = cell_len(value)
    if size > width and column.cut:
        # Cut in the middle: terminals differ at the end (address, port, device) as
        # much as at the start (http:, serial:).
        head = (width - 1) // 3
        tail = width - 1 - head
        return value[:head] + "…" + value[-tail:] if tail else value[:head] + "…"
    pad = " " * max(0, width - size)
    return pad + value if column.right else value + pad


def _line(
    cells: Sequence[tuple[str, str | None]], widths: Sequence[int | None],
    columns: Sequence[ListColumn], style: str = "",
) -> Text:
    line = Text(style=style, no_wrap=True, end="")
    for (value, cell_style), width, column in zip(cells, widths, columns, strict=True):
        if width is None:
            continue
        if line:
            line.append(_GAP)
        line.append(_fit(value, width, column), cell_style)
    line.rstrip()
    return line


def _emit(console: Console, lines: list[Text]) -> None:
    """Write ``lines`` in one go: plain text when nothing would be styled (a pipe, a
    file: fast at any size), through Rich on a console that shows colours."""
    if console.color_system is None:
        console.file.write("".join(line.plain + "\n" for line in lines))
        console.file.flush()
    else:
        console.print(Text("\n").join(lines), soft_wrap=True)


def reader_gone(stream: object) -> bool:
    """True if ``stream`` is a ``SafeStream`` whose reader went away."""
    return isinstance(stream, SafeStream) and stream.gone


def _reader_gone(console: Console) -> bool:
    # ``streams.SafeStream`` notes a reader that closed the pipe (``| head``): nothing
    # more will be read, so the rest of a long list is not worth reading either.
    return reader_gone(console.file)


def _count(number: int, lang: str) -> str:
    return _thousands(number) if lang == "vi" else f"{number:,}"


def render_entries(
    console: Console,
    entries: Iterable[Entry] | Iterable[SiteEntry],
    lang: str,
    path: str,
    *,
    terminals: Collection[str] | None = None,
    id_width: int = 0,
    site_width: int = 0,
    more: int = 0,
    more_exact: bool = True,
    in_doubt: int | None = None,
    chunk: int = LIST_CHUNK,
) -> None:
    """The journal as a table, written ``chunk`` rows at a time; in-doubt rows stand out.

    ``entries`` may be a stream of any length: only one chunk is held at a time, laid
    out with the column widths measured on the first (``id_width``: the widest id to
    come, so that ids line up and are never cut). ``terminals``: those the entries may
    name (default: the first chunk's); one is named in the title instead of a column.
    ``more``: entries of the selection left out (a footer says how to see them; at
    least that many unless ``more_exact``); ``in_doubt``: open entries in the whole
    selection (default: those shown). ``SiteEntry`` rows (head office) get a SITE
    column first (``site_width``: the widest site to come) and always a terminal column:
    one terminal name in two stores is two terminals.
    """
    rows: Iterator[Entry | SiteEntry] = iter(entries)
    batch = list(islice(rows, chunk))
    if not batch:
        console.print(Text(text("journal_empty", lang)))
        return
    chain = not isinstance(batch[0], Entry)
    names = set(terminals) if terminals is not None else {_unpack(e)[1].terminal
                                                          for e in batch}
    # One terminal (the usual shop): name it in the title and keep its column out, so
    # the list fits the 80 columns a cashier's console usually has.
    title = text("journal_title", lang, path=path)
    single = len(names) == 1 and not chain
    if single:
        title += f"\n{text('col_terminal', lang)}: {next(iter(names))}"
    keep = [i for i, c in enumerate(LIST_COLUMNS)
            if not (single and c.key == "col_terminal")]
    columns = [SITE_COLUMN] * chain + [LIST_COLUMNS[i] for i in keep]

    def lay_out(part: list[Entry | SiteEntry]) -> list[list[tuple[str, str | None]]]:
        out = []
        for row in part:
            site, entry = _unpack(row)
            cells = _cells(entry)
            out.append([(site or "", None)] * chain + [cells[i] for i in keep])
        return out

    headers = [(text(c.key, lang), None) for c in columns]
    cells = lay_out(batch)
    natural = [max(cell_len(value) for value, _ in column)
               for column in zip(headers, *cells, strict=True)]
    natural[chain] = max(natural[chain], id_width)
    if chain:
        natural[0] = max(natural[0], site_width)
    widths = fit_widths(natural, columns, console.width)
    console.print(Text(title))
    head = _line(headers, widths, columns, "bold")
    _emit(console, [head, Text("─" * _line_width(widths))])
    shown = open_shown = 0
    while batch:
        flags = [_unpack(e)[1].state in OPEN_STATES for e in batch]
        _emit(console, [_line(row, widths, columns, "bold" if open_ else "")
                        for row, open_ in zip(cells, flags, strict=True)])
        shown += len(batch)
        open_shown += sum(flags)
        if _reader_gone(console):
            return
        batch = list(islice(rows, chunk))
        cells = lay_out(batch)
    doubtful = open_shown if in_doubt is None else in_doubt
    if doubtful:
        console.print(Text(text("journal_in_doubt_count", lang, count=doubtful), style="bold red"))
        if doubtful > open_shown:
            console.print(Text(text("journal_in_doubt_hidden", lang), style="bold red"))
    if more:
        key = "journal_more" if more_exact else "journal_more_many"
        console.print(Text(text(key, lang, shown=_count(shown, lang),
                                total=_count(shown + more, lang), more=_count(more, lang))))


def write_entries_json(
    stream: IO[str], entries: Iterable[Entry] | Iterable[SiteEntry], *,
    chunk: int = LIST_CHUNK,
) -> None:
    """``entries`` as one JSON array of ``row_to_dict``, written ``chunk`` at a time.

    The same text as ``json.dumps`` of the whole list (ASCII-only), without ever
    holding the list: ``journal list --all --json`` on any journal in flat memory.
    """
    rows: Iterator[Entry | SiteEntry] = iter(entries)
    stream.write("[")
    separator = ""
    while batch := list(islice(rows, chunk)):
        # One dumps per chunk: a list's items come out joined by ", ", as in one dump.
        stream.write(separator + json.dumps([row_to_dict(e) for e in batch])[1:-1])
        separator = ", "
        if reader_gone(stream):
            return
    stream.write("]\n")
    stream.flush()


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
