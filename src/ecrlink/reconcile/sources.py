"""Reading rows one by one (any file ``frames`` hands over), and the journal's entries
as the register side (one rule, on columns).

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
from typing import Any, TypeVar

import polars as pl

from .._exceptions import InputFileError, ReconcileError
from ..journal.records import Entry, State
from .codes import code_columns, finish_cards
from .columns import HEADER_SEARCH_ROWS, ColumnMapping, Header, Role, find_header
from .model import APPROVED, IN_DOUBT, UNSETTLED, Side, kind_dtype, side_schema
from .values import (
    STRIP_CHARS,
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
    "JournalEntries",
    "decode_bytes",
    "entry_frame",
    "entry_schema",
    "file_kind",
    "journal_side",
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


def entry_schema() -> dict[str, Any]:
    """The columns of journal entries as the register-side rule reads them: the
    journal's own names, plus ``site`` (head office: the entry's store; else null) and
    ``time`` (the terminal's time, else the creation time, naive Vietnam-local).

    ``f3`` is the invoice, ``f5`` the reference code; ``terminal`` (the terminal's
    name) is read only for an entry without a TID, and may be '' for the others. Both
    readers give these: a local journal's ``Entry`` objects (``entry_frame``) and head
    office's server (``Central.entry_frame``), so the rule exists once."""
    return {
        "id": pl.Int64, "site": pl.String, "terminal": pl.String, "command": pl.String,
        "state": pl.String, "amount": pl.Int64, "f3": pl.String, "f5": pl.String,
        "card_no": pl.String, "approval_code": pl.String, "ref_no": pl.String,
        "receipt_no": pl.String, "void_of": pl.String, "tid": pl.String, "mid": pl.String,
        "batch_no": pl.String, "time": pl.Datetime("us"),
    }  # fmt: skip


def entry_frame(entries: Iterable[Entry], site: str | None = None) -> pl.DataFrame:
    """Journal entries as columns of ``entry_schema()``, one entry at a time (the
    objects are not kept)."""
    names = list(entry_schema())
    cols: dict[str, list[Any]] = {name: [] for name in names}
    add = [cols[name].append for name in names]
    for e in entries:
        moment = e.trans_time or e.created_at
        values = (
            e.id, site, e.terminal, e.command, e.state.value, e.amount, e.fields[2],
            e.fields[4], e.card_no, e.approval_code, e.ref_no, e.receipt_no, e.void_of,
            e.tid, e.mid, e.batch_no, parse_datetime(moment) if moment else None,
        )
        for append, value in zip(add, values, strict=True):
            append(value)
    return pl.DataFrame(cols, schema=entry_schema())


Fetch = Callable[[pl.DataFrame], list[Entry]]
"""The ``Entry`` objects of some rows of an entry frame (the rows with their
position ``_pos`` in it), in the same order."""


class JournalEntries:
    """Journal entries as columns, and the way back to the few ``Entry`` objects a
    report names (the in-doubt ones a statement proves): only those are built.

    ``frame`` may be given as a function that reads it: ``reconcile`` then reads the
    bank's file in another thread meanwhile (a server's or a journal's reading and
    polars' parsing of a file share two cores well).
    """

    __slots__ = ("_frame", "_load", "by_site", "fetch")

    def __init__(
        self, frame: pl.DataFrame | Callable[[], pl.DataFrame], fetch: Fetch, *,
        by_site: bool = False,
    ) -> None:
        self._frame = frame if isinstance(frame, pl.DataFrame) else None
        self._load = None if isinstance(frame, pl.DataFrame) else frame
        self.fetch = fetch
        """The entries of some rows of ``frame`` (with their ``_pos``), in order."""
        self.by_site = by_site
        """Head office: several stores' entries, each with its ``site``."""

    @property
    def frame(self) -> pl.DataFrame:
        """``entry_schema()`` columns; register rows' ``entry`` is a position in it."""
        if self._frame is None:
            assert self._load is not None
            self._frame, self._load = self._load(), None
        return self._frame

    @classmethod
    def of(cls, entries: Iterable[Entry]) -> JournalEntries:
        """Entries already in hand (the objects are kept to give them back)."""
        kept = list(entries)
        return cls(entry_frame(kept), lambda rows: [kept[i] for i in rows["_pos"]])

    def get(self, positions: Sequence[int]) -> list[Entry]:
        """The entries at these positions of ``frame``."""
        rows = self.frame.with_row_index("_pos").with_columns(pl.col("_pos").cast(pl.Int64))
        return self.fetch(rows[list(positions)]) if positions else []

    def __getitem__(self, position: int) -> Entry:
        return self.get([position])[0]


def rows_from_entries(entries: Iterable[Entry]) -> pl.DataFrame:
    """The register side (``side_schema()``) from journal entries: ``journal_side``."""
    return journal_side(entry_frame(entries))


def journal_side(entries: pl.DataFrame) -> pl.DataFrame:
    """The register side (``side_schema()``) from journal entries (``entry_schema()``).

    Approved sales are payments; unsettled sales (in doubt, pending, sent) are
    payments nobody is sure of yet (they take part in exact matching only, and a
    match proves them); an approved void cancels the latest approved sale not
    cancelled yet whose receipt number it names (numerically), on the same terminal
    (TID, else the terminal's name) of the same store, and of the same batch where
    both name one; it carries that sale's amount and card data. Declined,
    canceled and failed commands charged nothing and are left out, as are
    settlements and other commands. Sales come first, then voids, each in the
    entries' order; ``row`` is the entry id and ``entry`` its position in
    ``entries``.
    """
    approved, open_states = State.APPROVED.value, sorted(s.value for s in UNSETTLED)
    cmd, state = pl.col("command"), pl.col("state")
    kept = (
        entries.with_row_index("entry")
        .with_columns(pl.col("entry").cast(pl.Int64))
        .filter(((cmd == "sale") & state.is_in([approved, *open_states]))
                | ((cmd == "void") & (state == approved)))
    )  # fmt: skip
    kept = _money_fields(kept)
    sales = kept.filter(cmd == "sale")
    sales = sales.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("idx"),
        pl.when(state == approved).then(pl.lit(APPROVED)).otherwise(pl.lit(IN_DOUBT))
        .alias("_state"),
        pl.lit(-1, pl.Int64).alias("link"),
    )  # fmt: skip
    voids = kept.filter(cmd == "void").with_columns(
        (pl.int_range(pl.len(), dtype=pl.Int64) + sales.height).alias("idx"),
        pl.lit(APPROVED).alias("_state"),
    )
    voids = voids.with_columns(_void_links(sales, voids).alias("link"))
    # A void takes the money fields of the sale it cancels.
    lent = sales.select(pl.col("idx").alias("link"), *(pl.col(f).alias(f"_s{f}") for f in _DATA))
    voids = voids.join(lent, on="link", how="left", maintain_order="left").with_columns(
        pl.coalesce(pl.col(f"_s{f}"), pl.col(f)).alias(f) for f in _DATA
    )
    kind = kind_dtype()
    parts = [
        part.select(
            "idx", pl.col("id").alias("row"), pl.lit(k.value, kind).alias("kind"),
            *(pl.col(f).alias(f.removeprefix("_")) for f in _DATA),
            "time",
            *(pl.col(f).fill_null("").alias(t) for f, t in _OWN),
            pl.col("_state").alias("state"), "link",
            (state != approved).alias("unsettled"), "entry",
        )
        for part, k in ((sales, Kind.SALE), (voids, Kind.VOID))
    ]  # fmt: skip
    return pl.concat(parts).select(list(side_schema()))


_DATA = ("_amount", "_invoice", "_reference", "_card", "_last4", "_approval", "_ref_no")
"""A payment's money fields: a void takes them from its sale."""
_OWN = (("tid", "tid"), ("mid", "mid"), ("batch_no", "batch"), ("receipt_no", "receipt"))
"""What every row keeps of its own entry (with ``id``, ``time`` and ``state``)."""


def _money_fields(kept: pl.DataFrame) -> pl.DataFrame:
    """``_DATA`` of every entry, normalised as a file's cells are (``codes``)."""
    def text(name: str) -> pl.Expr:
        return pl.col(name).fill_null("").str.strip_chars(STRIP_CHARS)

    out = kept.with_columns(
        pl.col("amount").fill_null(0).abs().alias("_amount"),
        text("f3").str.to_uppercase().alias("_invoice"),
        pl.col("f5").fill_null("").alias("_reference"),
        text("card_no").alias("_card"),
        text("approval_code").str.to_uppercase().alias("_approval"),
        text("ref_no").str.to_uppercase().alias("_ref_no"),
    )
    return finish_cards(out.with_columns(code_columns(out, prefix="_")), prefix="_")


def _number(text: str | None) -> str:
    """Receipt and batch numbers compare numerically: ``61`` is ``000061``."""
    text = (text or "").strip()
    return text.lstrip("0") or ("0" if text else "")


def _numbers(values: pl.Series) -> pl.Series:
    """``_number`` of each value: plain digits vectorised, anything else by ``_number``."""
    text = values.fill_null("")
    frame = pl.DataFrame({"t": text})
    t = pl.col("t")
    bare = t.str.strip_chars_start("0")
    fast = frame.select(
        pl.when(~t.str.contains("^[0-9]*$")).then(None)
        .when(t == "").then(pl.lit(""))
        .when(bare == "").then(pl.lit("0"))
        .otherwise(bare)
    ).to_series()  # fmt: skip
    odd = fast.is_null()
    if odd.any():
        table = {v: _number(v) for v in text.filter(odd).unique().to_list()}
        fast = fast.fill_null(text.replace_strict(table, default=None, return_dtype=pl.String))
    return fast.alias(values.name)


def _void_links(sales: pl.DataFrame, voids: pl.DataFrame) -> pl.Series:
    """For each void (in order), the idx of the sale it cancels, else -1: an approved
    sale with the receipt number it names (numerically), on the same store and
    terminal (TID, else the terminal's name), of the same batch where both name one;
    the latest such sale not already taken by an earlier void."""
    none = pl.Series("link", [-1] * voids.height, dtype=pl.Int64)
    if voids.height == 0 or sales.height == 0:
        return none
    tid = pl.col("tid")
    place = pl.when(tid.is_not_null() & (tid != "")).then(tid).otherwise(pl.col("terminal"))
    receipt = pl.col("receipt_no")
    candidates = sales.filter(
        (pl.col("_state") == APPROVED) & receipt.is_not_null() & (receipt != "")
    ).select(
        pl.col("idx").alias("_sale"), pl.col("site").fill_null("").alias("_site"),
        place.alias("_place"), pl.col("receipt_no").alias("_no"),
        pl.col("batch_no").alias("_batch"),
    )  # fmt: skip
    asking = voids.select(
        pl.col("idx").alias("_void"), pl.col("site").fill_null("").alias("_site"),
        place.alias("_place"), pl.col("void_of").alias("_no"),
        pl.col("batch_no").alias("_vbatch"),
    )
    if candidates.height == 0:
        return none
    candidates = candidates.with_columns(_numbers(candidates.get_column("_no")))
    asking = asking.with_columns(_numbers(asking.get_column("_no")))
    pairs = asking.join(candidates, on=["_site", "_place", "_no"], how="inner")
    if pairs.height == 0:
        return none
    vb, sb = pl.col("_vbatch"), pl.col("_batch")
    either_blank = vb.is_null() | (vb == "") | sb.is_null() | (sb == "")
    pairs = pairs.with_columns(
        _numbers(pairs.get_column("_vbatch")).alias("_vn"),
        _numbers(pairs.get_column("_batch")).alias("_sn"),
    ).filter(either_blank | (pl.col("_vn") == pl.col("_sn")))
    # Each void in turn takes its latest candidate not taken yet: a void per pair of
    # voids and sales of one receipt number (rare), not per payment.
    taken: set[int] = set()
    link: dict[int, int] = {}
    for void, sale in pairs.sort(["_void", "_sale"], descending=[False, True]).select(
        "_void", "_sale"
    ).iter_rows():
        if void not in link and sale not in taken:
            link[void] = sale
            taken.add(sale)
    first = voids.get_column("idx")
    return pl.Series("link", [link.get(i, -1) for i in first.to_list()], dtype=pl.Int64)


LEND_KEYS: tuple[tuple[str, ...], ...] = (("invoice", "amount"), ("invoice",))
"""How invoice rows find their journal sale: invoice + amount, then invoice alone."""
LENT_FIELDS = ("card", "last4", "approval", "ref_no", "tid", "mid", "batch", "receipt",
               "reference")  # fmt: skip
"""What a journal entry lends an invoice row that lacks it."""
