"""Reading rows one by one: the journal's entries, and any file ``frames`` hands over.

``side_from_rows`` is the row reader: it parses cells with ``values``, one row at a
time, and names the file, row and column of the first cell it cannot read. The
frame reader (``frames``) uses it for files its vectorised short cuts cannot finish.
"""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from .._exceptions import InputFileError, ReconcileError
from ..journal.records import Entry, State
from .columns import HEADER_SEARCH_ROWS, ColumnMapping, Header, Role, find_header
from .model import APPROVED, IN_DOUBT, UNSETTLED, Side
from .values import (
    Kind,
    card_last4,
    cell_text,
    fold,
    mask_card,
    norm_approval,
    norm_invoice,
    norm_ref_no,
    parse_amount,
    parse_datetime,
    parse_kind,
    parse_status,
    parse_time_of_day,
)

__all__ = [
    "FOOTER_WORDS",
    "LEND_KEYS",
    "LENT_FIELDS",
    "MAX_CELL_CHARS",
    "decode_bytes",
    "file_kind",
    "rows_from_entries",
    "side_from_rows",
    "sniff_csv",
]

MAX_CELL_CHARS = 32_767
"""The longest cell read: what a spreadsheet cell holds (Excel's limit), so every
report can be written back to XLSX. A longer cell is an error naming its row."""
FOOTER_WORDS = frozenset({"tong", "tong cong", "cong", "total", "grand total", "sum"})
"""A row whose first non-empty cell is one of these (folded) is a totals footer."""

_T = TypeVar("_T")
_DELIMITERS = (",", ";", "\t", "|")


def file_kind(path: str | Path) -> str:
    """``csv`` or ``xlsx``, from the suffix or, failing that, the first bytes."""
    suffix = Path(path).suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return "xlsx"
    if suffix == ".xls":
        raise InputFileError(
            str(path), "the old .xls format is not read: save it as .xlsx or CSV"
        )
    if suffix in (".csv", ".txt", ".tsv"):
        return "csv"
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise InputFileError(str(path), f"cannot read: {exc.strerror}") from None
    return "xlsx" if head.startswith(b"PK\x03\x04") else "csv"


def decode_bytes(raw: bytes, path: str) -> str:
    """A CSV file's text: UTF-8 (with or without BOM), UTF-16 with a BOM (Excel's
    "Unicode text"), else Windows-1258 (Excel's plain "CSV" on Vietnamese Windows)."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise InputFileError(path, f"broken UTF-16 text: {exc.reason}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row = raw.count(b"\n", 0, exc.start) + 1
        try:
            # Windows-1258 writes tone marks as combining characters: compose them,
            # so "Hóa" compares equal however it was typed.
            return unicodedata.normalize("NFC", raw.decode("cp1258"))
        except UnicodeDecodeError:
            raise InputFileError(
                path, "neither UTF-8, UTF-16 nor Windows-1258 text (save it as CSV UTF-8)",
                row=row,
            ) from None


def sniff_csv(text: str, mapping: ColumnMapping | None = None) -> str:
    """The delimiter: the one under which a header row is recognised best."""
    head = "\n".join(text.splitlines()[:HEADER_SEARCH_ROWS])
    best, best_score = ",", -1
    for delimiter in _DELIMITERS:
        if delimiter not in head:
            continue
        rows: list[list[str]] = list(csv.reader(io.StringIO(head), delimiter=delimiter))
        try:
            header = find_header(rows, "", "bank", mapping)
            score = len(header.columns)
        except ReconcileError:
            score = 0
        if score > best_score:
            best, best_score = delimiter, score
    return best


def side_from_rows(
    path: str,
    role: Role,
    rows: Sequence[Sequence[object]],
    header: Header,
    mapping: ColumnMapping | None = None,
) -> Side:
    """Parse the data rows below ``header`` into a side; names file, row and column
    of the first cell that cannot be read."""
    types = dict(mapping.types) if mapping else {}
    cols = header.columns
    side = Side(path)
    for index in range(header.index + 1, len(rows)):
        cells = rows[index]
        row = index + 1
        for c, cell in enumerate(cells):
            if isinstance(cell, str) and len(cell) > MAX_CELL_CHARS:
                named = {col: f for f, col in cols.items()}
                raise InputFileError(
                    path,
                    f"a cell holds {len(cell):,} characters, more than the "
                    f"{MAX_CELL_CHARS:,} a spreadsheet cell can",
                    row=row,
                    column=header.names[named[c]] if c in named else f"#{c + 1}",
                )
        if not any(cell_text(c) for c in cells) or _is_footer(cells):
            continue
        get = _getter(cells)
        try:
            if "status" in cols and not _parsed("status", parse_status, get(cols["status"])):
                side.dropped += 1
                continue
            _add_row(side, row, header, get, types)
        except _CellError as exc:
            raise InputFileError(
                path, str(exc.__cause__), row=row, column=header.names[exc.field]
            ) from None
    return side


class _CellError(ReconcileError):
    """Internal: which field failed; the cause says why."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def _parsed(field: str, parser: Callable[[object], _T], cell: object) -> _T:
    try:
        return parser(cell)
    except ReconcileError as exc:
        raise _CellError(field) from exc


def _add_row(
    side: Side, row: int, header: Header, get: Callable[[int], object], types: dict[str, Kind]
) -> None:
    cols = header.columns
    amount = _parsed("amount", parse_amount, get(cols["amount"]))
    kind = Kind.SALE
    if "type" in cols and cell_text(get(cols["type"])):
        kind = _parsed("type", lambda v: parse_kind(v, types), get(cols["type"]))
    elif amount < 0:
        kind = Kind.VOID
    if amount < 0 and kind is Kind.SALE:
        raise _CellError("amount") from ReconcileError("a sale with a negative amount")
    moment = _moment(header, get)
    text = {
        name: cell_text(get(cols[name])) if name in cols else ""
        for name in ("invoice", "reference", "card", "approval", "ref_no", "tid", "mid",
                     "batch", "receipt")
    }  # fmt: skip
    side.add(
        row=row,
        kind=kind,
        amount=abs(amount),
        time=moment,
        invoice=norm_invoice(text["invoice"]),
        reference=text["reference"],
        card=mask_card(text["card"]),
        last4=card_last4(text["card"]),
        approval=norm_approval(text["approval"]),
        ref_no=norm_ref_no(text["ref_no"]),
        tid=text["tid"],
        mid=text["mid"],
        batch=text["batch"],
        receipt=text["receipt"],
    )


def _getter(cells: Sequence[object]) -> Callable[[int], object]:
    width = len(cells)
    return lambda c: cells[c] if c < width else None


def _is_footer(cells: Sequence[object]) -> bool:
    first = next((cell_text(c) for c in cells if cell_text(c)), "")
    return fold(first).rstrip(" :") in FOOTER_WORDS


def _moment(header: Header, get: Callable[[int], object]) -> datetime | None:
    cols = header.columns
    name = "date" if "date" in cols else "time" if "time" in cols else None
    if name is None:
        return None
    moment = _parsed(name, parse_datetime, get(cols[name]))
    if name == "date" and "time" in cols and cell_text(get(cols["time"])):
        cell = get(cols["time"])
        try:
            of_day = parse_time_of_day(cell)
        except ReconcileError:
            of_day = _parsed("time", parse_datetime, cell).time()
        moment = datetime.combine(moment.date(), of_day)
    return moment


# --- the journal ---------------------------------------------------------------------


def _local(moment: datetime) -> datetime:
    return parse_datetime(moment)


def _number(text: str | None) -> str:
    """Receipt and batch numbers compare numerically: ``61`` is ``000061``."""
    text = (text or "").strip()
    return text.lstrip("0") or ("0" if text else "")


def rows_from_entries(entries: Iterable[Entry]) -> Side:
    """The register side from journal entries.

    Approved sales are payments; in-doubt or pending sales are payments nobody is
    sure of yet (they take part in exact matching only, and a match proves them);
    approved voids cancel the sale whose receipt number they name on the same
    terminal and batch. Declined, canceled and failed commands charged nothing and
    are left out, as are settlements and other commands.
    """
    side = Side("journal")
    kept = [e for e in entries if e.command in ("sale", "void")]
    sale_at: dict[tuple[str, str], list[int]] = {}
    voids: list[Entry] = []
    for e in kept:
        if e.command == "void":
            if e.state is State.APPROVED:
                voids.append(e)
            continue
        if e.state is State.APPROVED:
            state = APPROVED
        elif e.state in UNSETTLED:
            state = IN_DOUBT
        else:
            continue
        i = _add_entry(side, e, Kind.SALE, e, state)
        if e.receipt_no:
            terminal = e.tid or e.terminal
            sale_at.setdefault((terminal, _number(e.receipt_no)), []).append(i)
    taken: set[int] = set()
    for v in voids:
        candidates = sale_at.get((v.tid or v.terminal, _number(v.void_of)), [])
        same_batch = [
            i for i in candidates
            if i not in taken and side.state[i] == APPROVED
            and (not v.batch_no or not side.batch[i]
                 or _number(v.batch_no) == _number(side.batch[i]))
        ]  # fmt: skip
        sale = same_batch[-1] if same_batch else -1
        source = side.entry[sale] if sale >= 0 else None
        i = _add_entry(side, v, Kind.VOID, source or v, APPROVED, link=sale)
        if sale >= 0:
            taken.add(sale)
    return side


def _add_entry(
    side: Side, e: Entry, kind: Kind, data: Entry, state: str, link: int = -1
) -> int:
    """Add one entry; a void takes the money fields of the sale it cancels."""
    card = data.card_no or ""
    moment = e.trans_time or e.created_at
    return side.add(
        row=e.id,
        kind=kind,
        amount=abs(data.amount or 0),
        time=_local(moment) if moment else None,
        invoice=norm_invoice(data.invoice),
        reference=data.reference,
        card=mask_card(card),
        last4=card_last4(card),
        approval=norm_approval(data.approval_code),
        ref_no=norm_ref_no(data.ref_no),
        tid=e.tid or "",
        mid=e.mid or "",
        batch=e.batch_no or "",
        receipt=e.receipt_no or "",
        state=state,
        link=link,
        entry=e,
    )


LEND_KEYS: tuple[tuple[str, ...], ...] = (("invoice", "amount"), ("invoice",))
"""How invoice rows find their journal sale: invoice + amount, then invoice alone."""
LENT_FIELDS = ("card", "last4", "approval", "ref_no", "tid", "mid", "batch", "receipt",
               "reference")  # fmt: skip
"""What a journal entry lends an invoice row that lacks it."""
