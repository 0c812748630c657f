"""Writing a report: JSON, CSV and XLSX, streamed from the report's table.

JSON and CSV are written by polars from columns, in chunks: no Python object per
row. XLSX is written by xlsxwriter in constant-memory mode (each row goes to disk
as it is written).

**Formula-safe.** A bank's cell such as ``=HYPERLINK("http://evil",1)``, ``+cmd|…``
or ``@SUM(…)`` must never run when an accountant opens the report. Every text cell
that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (OWASP's
CSV-injection rule) is written as text no spreadsheet evaluates: in CSV prefixed
with a single quote ``'``; in XLSX as a text cell with Excel's quote-prefix style (the
visible text is unchanged, and editing the cell keeps it text). Numbers stay numbers.
"""

from __future__ import annotations

import io
import json
import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import polars as pl

from .._exceptions import ReconcileError
from .model import Category
from .report import ADVICE, LABELS, RECORD_FIELDS, ROLES, Lang, Report

__all__ = [
    "CSV_COLUMNS",
    "FORMULA_STARTS",
    "json_chunks",
    "write_csv",
    "write_json",
    "write_report",
    "write_xlsx",
]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A text cell starting with one of these is one a spreadsheet may evaluate."""
_FORMULA = "^[=+\\-@\t\r]"

CSV_COLUMNS: tuple[str, ...] = (
    "category", "key", "amount", "difference", "in_doubt", "resolved",
    *(f"{short}_{f}" for _, short in ROLES[:2] for f in RECORD_FIELDS),
    "reg_void_row", "bank_void_row",
)  # fmt: skip
_CHUNK_ROWS = 100_000
_AHEAD = 2
"""JSON chunks built at once (two cores: one chunk each)."""


def report_columns(report: Report) -> tuple[str, ...]:
    """``CSV_COLUMNS``, with head office's ``site`` after ``resolved`` when it has one."""
    if not report.by_site:
        return CSV_COLUMNS
    return (*CSV_COLUMNS[:6], "site", *CSV_COLUMNS[6:])


def _when(column: str, values: pl.Series | None = None) -> pl.Expr:
    """A time as ``datetime.isoformat(sep=" ")`` writes it (``values``: the column, when
    at hand, to skip the microseconds' form if no value has any)."""
    t = pl.col(column)
    if values is not None and not (values.dt.microsecond() != 0).any():
        return t.dt.strftime("%Y-%m-%d %H:%M:%S")
    return (
        pl.when(t.dt.microsecond() == 0)
        .then(t.dt.strftime("%Y-%m-%d %H:%M:%S"))
        .otherwise(t.dt.strftime("%Y-%m-%d %H:%M:%S%.6f"))
    )


# --- JSON --------------------------------------------------------------------------------


_NEEDS_ESCAPE = r'["\\\x00-\x1f]'
"""A character JSON escapes inside a string (``"``, ``\\``, a control character)."""


def _escaped(column: pl.Series) -> pl.Expr:
    """String ``column`` as the text between a JSON string's quotes.

    Nearly no cell needs escaping; the few distinct ones that do are escaped by
    polars' own JSON writer, so the text is exactly what ``write_ndjson`` writes.
    """
    c = pl.col(column.name)
    if column.name in _VOCABULARY:
        return c
    special = column.filter(column.str.contains(_NEEDS_ESCAPE)).unique()
    if not len(special):
        return c
    buffer = io.BytesIO()
    pl.DataFrame({"s": special}).write_ndjson(buffer)
    # Each line is {"s":"<text>"}: the text is between the 6th byte and the '"}'.
    lines = buffer.getvalue().rstrip(b"\n").split(b"\n")  # no raw \n inside JSON
    table = dict(zip(special.to_list(), (line[6:-2].decode() for line in lines), strict=True))
    return (
        pl.when(c.str.contains(_NEEDS_ESCAPE))
        .then(c.replace_strict(table, default=None, return_dtype=pl.String))
        .otherwise(c)
    )


_VOCABULARY = frozenset({
    "category", "key", *(f"{prefix}_{f}" for _, prefix in ROLES for f in ("type", "state")),
})  # fmt: skip
"""Columns whose values are the code's own words (categories, keys, kinds, states):
nothing in them needs a JSON escape, so no cell is looked at (a quarter of the scan)."""

Piece = str | pl.Expr
"""Part of a JSON line: fixed text, or a column's text (null: the line is null)."""


def _json_pieces(table: pl.DataFrame, name: str, *, nulls: int = 0) -> list[Piece]:
    """Column ``name`` of ``table`` as JSON text, as ``write_ndjson`` writes it.

    ``nulls`` is how many nulls the column may have that make the whole line null
    (a side row the report row does not have): a column with no other null has its
    quotes written as fixed text, without building a quoted copy of every value.
    """
    column = table.get_column(name)
    dtype, c = column.dtype, pl.col(name)
    quoted = dtype == pl.String or isinstance(dtype, pl.Datetime)
    if dtype == pl.String:
        value = _escaped(column)
    elif isinstance(dtype, pl.Datetime):
        value = _when(name, column)
    elif dtype == pl.Boolean:
        value = pl.when(c).then(pl.lit("true")).when(~c).then(pl.lit("false"))
    else:
        value = c.cast(pl.String)
    if column.null_count() <= nulls:
        return ['"', value, '"'] if quoted else [value]
    if quoted:
        value = pl.lit('"') + value + pl.lit('"')
    return [value.fill_null(pl.lit("null"))]


def _json_object(fields: list[tuple[str, list[Piece]]]) -> list[Piece]:
    out: list[Piece] = []
    for n, (name, pieces) in enumerate(fields):
        out += [("{" if n == 0 else ",") + f'"{name}":', *pieces]
    return [*out, "}"]


def _concat(pieces: list[Piece]) -> pl.Expr:
    """One string of the pieces (fixed texts side by side merged): null if one is."""
    merged: list[Piece] = []
    for piece in pieces:
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    return pl.concat_str([pl.lit(p) if isinstance(p, str) else p for p in merged])


def _json_lines(table: pl.DataFrame, first: bool) -> bytes:
    """The rows of ``table`` as JSON objects, each after ``,\\n`` (the document's first
    after ``\\n``): built as text by polars from flat columns, no nested structs.

    A side row present on every row of the chunk is written inline in the line; one
    present on some rows is built apart, and ``null`` where absent.
    """
    lead = ("category", "key", "amount", "difference", "in_doubt", "resolved")
    site = ("site",) if "site" in table.columns else ()  # head office's report
    fields = [(name, _json_pieces(table, name)) for name in (*lead, *site)]
    for name, prefix in ROLES:
        absent = table.get_column(f"{prefix}_row").null_count()
        if absent == table.height:  # none in this chunk (voids are few)
            fields.append((name, ["null"]))
            continue
        record = _json_object([
            (f, _json_pieces(table, f"{prefix}_{f}", nulls=absent)) for f in RECORD_FIELDS
        ])
        if absent:
            record = [pl.when(pl.col(f"{prefix}_row").is_not_null()).then(_concat(record))
                      .otherwise(pl.lit("null"))]  # fmt: skip
        fields.append((name, record))
    separator: Piece = ",\n"
    if first:
        separator = pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("\n")).otherwise(
            pl.lit(",\n"))
    lines = table.lazy().select(_concat([separator, *_json_object(fields)]).alias("line"))
    buffer = io.BytesIO()
    lines.collect().write_csv(
        buffer, include_header=False, quote_style="never", line_terminator=""
    )
    return buffer.getvalue()


_NON_ASCII = re.compile("[^\x00-\x7e]")
"""What ``json.dumps(ensure_ascii=True)`` escapes beyond polars' own escapes: every
non-ASCII character, and DEL (0x7f)."""


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_chunks(report: Report, *, ascii_only: bool = False) -> Iterator[bytes]:
    """The JSON document (``Report.to_dict``) in UTF-8 pieces, rows written by polars.

    ``ascii_only`` escapes every non-ASCII character, for a console of any code page.
    """
    head = json.dumps(report.head(), ensure_ascii=ascii_only)
    yield (head[:-1] + ', "rows": [').encode()
    def build(start: int) -> bytes:
        chunk = _json_lines(report.table(start=start, length=_CHUNK_ROWS), first=not start)
        if ascii_only and (not chunk.isascii() or b"\x7f" in chunk):
            chunk = _NON_ASCII.sub(_escape, chunk.decode()).encode()
        return chunk

    # The next chunks are built (by polars, without the GIL) while the caller writes
    # this one: building takes most of the time, and a chunk's line building runs on
    # one core, so _AHEAD chunks are built at once.
    report.table(length=0)  # sorts the report once, before the builders start
    with ThreadPoolExecutor(max_workers=_AHEAD) as pool:
        pending: deque[Future[bytes]] = deque()
        for start in range(0, len(report), _CHUNK_ROWS):
            if len(pending) == _AHEAD:
                yield pending.popleft().result()
            pending.append(pool.submit(build, start))
        while pending:
            yield pending.popleft().result()
    yield b"\n]}\n"


def write_json(report: Report, out: IO[str], *, ascii_only: bool = False) -> None:
    """Write the JSON document to a text stream, a chunk of rows at a time."""
    for chunk in json_chunks(report, ascii_only=ascii_only):
        out.write(chunk.decode())


# --- CSV ---------------------------------------------------------------------------------


def _safe_text(column: str) -> pl.Expr:
    c = pl.col(column)
    return pl.when(c.str.contains(_FORMULA)).then(pl.lit("'") + c).otherwise(c).alias(column)


def _csv_frame(table: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
    frame = table.select(columns)
    exprs = []
    for name, dtype in frame.schema.items():
        if dtype == pl.String:
            exprs.append(_safe_text(name))
        elif dtype == pl.Boolean:
            exprs.append(pl.col(name).replace_strict({True: "True", False: "False"},
                                                     return_dtype=pl.String))
        elif isinstance(dtype, pl.Datetime):
            exprs.append(_when(name, frame.get_column(name)).alias(name))
    return frame.with_columns(exprs)


def write_csv(report: Report, out: IO[bytes]) -> None:
    """Write every row as CSV to a binary stream (one header line; the category first)."""
    first = True
    for start in range(0, max(len(report), 1), _CHUNK_ROWS):
        table = report.table(start=start, length=_CHUNK_ROWS)
        _csv_frame(table, report_columns(report)).write_csv(out, include_header=first)
        first = False


# --- XLSX --------------------------------------------------------------------------------

_VND = '#,##0" ₫"'
_WHEN = "dd/mm/yyyy hh:mm:ss"
_XLSX_MAX_ROWS = 1_048_576
_MONEY = frozenset({"amount", "difference", "reg_amount", "bank_amount"})


def write_xlsx(report: Report, path: str | Path, lang: Lang = "en") -> None:
    """Write a workbook: a summary sheet, then one sheet per category (money as VND).

    Constant memory: xlsxwriter writes each row to disk as it goes.
    """
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path), {
        "constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False,
        "strings_to_numbers": False, "remove_timezone": True,
    })  # fmt: skip
    bold = book.add_format({"bold": True})
    money = book.add_format({"num_format": _VND})
    when = book.add_format({"num_format": _WHEN})
    quoted = book.add_format({"quote_prefix": True})
    try:
        sheet = book.add_worksheet("summary")
        sheet.write_row(0, 0, ("category", "meaning", "count", "amount", "what to do"), bold)
        for n, (category, totals) in enumerate(report.summary.items(), start=1):
            sheet.write_string(n, 0, category.value)
            sheet.write_string(n, 1, LABELS[lang][category])
            sheet.write_number(n, 2, totals.count)
            sheet.write_number(n, 3, totals.amount, money)
            sheet.write_string(n, 4, ADVICE[lang][category])
        if report.by_site:
            _totals_sheet(book, report, lang, bold, money)
        for category in Category:
            _category_sheets(book, report, category, bold, money, when, quoted)
        book.close()
    except OSError as exc:
        raise ReconcileError(f"cannot write {path}: {exc.strerror or exc}") from None
    except xlsxwriter.exceptions.XlsxWriterException as exc:
        raise ReconcileError(f"cannot write {path}: {exc}") from None


def _totals_sheet(book: Any, report: Report, lang: Lang, bold: Any, money: Any) -> None:
    """Head office's totals: per site, then per MID, each category's count and amount."""
    ws = book.add_worksheet("totals")
    ws.write_row(0, 0, ("by", "site / MID", "category", "meaning", "count", "amount"), bold)
    row = 0
    for by in ("site", "mid"):
        for key, per in report.totals(by).items():
            for category, totals in per.items():
                row += 1
                ws.write_string(row, 0, by)
                ws.write_string(row, 1, key or "")
                ws.write_string(row, 2, category.value)
                ws.write_string(row, 3, LABELS[lang][category])
                ws.write_number(row, 4, totals.count)
                ws.write_number(row, 5, totals.amount, money)


def _category_sheets(book: Any, report: Report, category: Category, *formats: Any) -> None:
    bold, money, when, quoted = formats
    writers: list[Any] = []
    part, row = 1, 0
    columns = report_columns(report)
    ws = book.add_worksheet(category.value)
    ws.write_row(0, 0, columns, bold)
    for start in range(0, report.count(category), 10_000):
        chunk = report.table(category, start=start, length=10_000).select(columns)
        writers = writers or [_cell_writer(name, dtype, money, when, quoted)
                              for name, dtype in chunk.schema.items()]  # fmt: skip
        for values in chunk.iter_rows():
            row += 1
            if row == _XLSX_MAX_ROWS:
                part += 1
                ws = book.add_worksheet(f"{category.value} ({part})")
                ws.write_row(0, 0, columns, bold)
                row = 1
            for col, value in enumerate(values):
                if value is not None and value != "":  # an empty cell costs nothing
                    writers[col](ws, row, col, value)


def _cell_writer(name: str, dtype: Any, money: Any, when: Any, quoted: Any) -> Any:
    if dtype == pl.String:

        def text(ws: Any, r: int, c: int, v: str) -> None:
            if v.startswith(FORMULA_STARTS):
                ws.write_string(r, c, v, quoted)
            else:
                ws.write_string(r, c, v)

        return text
    if isinstance(dtype, pl.Datetime):
        return lambda ws, r, c, v: ws.write_datetime(r, c, v, when)
    if dtype == pl.Boolean:
        return lambda ws, r, c, v: ws.write_boolean(r, c, v)
    if name in _MONEY:
        return lambda ws, r, c, v: ws.write_number(r, c, v, money)
    return lambda ws, r, c, v: ws.write_number(r, c, v)


# --- by suffix ---------------------------------------------------------------------------


def write_report(report: Report, path: str | Path, lang: Lang = "en") -> None:
    """Write ``.xlsx``, ``.csv`` (UTF-8 with BOM, for Excel) or ``.json`` by the suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".xlsx":
        write_xlsx(report, path, lang)
        return
    if suffix not in (".csv", ".json"):
        raise ReconcileError(f"cannot write {path}: use a .xlsx, .csv or .json file name")
    try:
        with open(path, "wb") as fh:
            if suffix == ".csv":
                fh.write("\ufeff".encode())
                write_csv(report, fh)
            else:
                for chunk in json_chunks(report):
                    fh.write(chunk)
    except OSError as exc:
        raise ReconcileError(f"cannot write {path}: {exc.strerror}") from None
