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
from collections.abc import Iterator
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


def _when(column: str) -> pl.Expr:
    """A time as ``datetime.isoformat(sep=" ")`` writes it."""
    t = pl.col(column)
    return (
        pl.when(t.dt.microsecond() == 0)
        .then(t.dt.strftime("%Y-%m-%d %H:%M:%S"))
        .otherwise(t.dt.strftime("%Y-%m-%d %H:%M:%S%.6f"))
    )


# --- JSON --------------------------------------------------------------------------------


def _json_rows(table: pl.DataFrame) -> pl.DataFrame:
    def record(prefix: str) -> pl.Expr:
        present = table.get_column(f"{prefix}_row").null_count()
        if present == table.height:  # none in this chunk (voids are few)
            return pl.lit(None)
        fields = [
            (_when(f"{prefix}_{f}") if f == "time" else pl.col(f"{prefix}_{f}")).alias(f)
            for f in RECORD_FIELDS
        ]
        if present == 0:
            return pl.struct(fields)
        return pl.when(pl.col(f"{prefix}_row").is_not_null()).then(pl.struct(fields))

    return table.select(
        "category", "key", "amount", "difference", "in_doubt", "resolved",
        *(record(prefix).alias(name) for name, prefix in ROLES),
    )  # fmt: skip


_NON_ASCII = re.compile("[^\x00-\x7f]")


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
    for start in range(0, len(report), _CHUNK_ROWS):
        buffer = io.BytesIO()
        _json_rows(report.table(start=start, length=_CHUNK_ROWS)).write_ndjson(buffer)
        # One object per line, and JSON never holds a raw line break in a string.
        chunk = buffer.getvalue().rstrip(b"\n").replace(b"\n", b",\n")
        if ascii_only and not chunk.isascii():
            chunk = _NON_ASCII.sub(_escape, chunk.decode()).encode()
        yield (b",\n" if start else b"\n") + chunk
    yield b"\n]}\n"


def write_json(report: Report, out: IO[str], *, ascii_only: bool = False) -> None:
    """Write the JSON document to a text stream, a chunk of rows at a time."""
    for chunk in json_chunks(report, ascii_only=ascii_only):
        out.write(chunk.decode())


# --- CSV ---------------------------------------------------------------------------------


def _safe_text(column: str) -> pl.Expr:
    c = pl.col(column)
    return pl.when(c.str.contains(_FORMULA)).then(pl.lit("'") + c).otherwise(c).alias(column)


def _csv_frame(table: pl.DataFrame) -> pl.DataFrame:
    frame = table.select(CSV_COLUMNS)
    exprs = []
    for name, dtype in frame.schema.items():
        if dtype == pl.String:
            exprs.append(_safe_text(name))
        elif dtype == pl.Boolean:
            exprs.append(pl.col(name).replace_strict({True: "True", False: "False"},
                                                     return_dtype=pl.String))
        elif isinstance(dtype, pl.Datetime):
            exprs.append(_when(name).alias(name))
    return frame.with_columns(exprs)


def write_csv(report: Report, out: IO[bytes]) -> None:
    """Write every row as CSV to a binary stream (one header line; the category first)."""
    first = True
    for start in range(0, max(len(report), 1), _CHUNK_ROWS):
        table = report.table(start=start, length=_CHUNK_ROWS)
        _csv_frame(table).write_csv(out, include_header=first)
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
        for category in Category:
            _category_sheets(book, report, category, bold, money, when, quoted)
        book.close()
    except OSError as exc:
        raise ReconcileError(f"cannot write {path}: {exc.strerror or exc}") from None
    except xlsxwriter.exceptions.XlsxWriterException as exc:
        raise ReconcileError(f"cannot write {path}: {exc}") from None


def _category_sheets(book: Any, report: Report, category: Category, *formats: Any) -> None:
    bold, money, when, quoted = formats
    writers: list[Any] = []
    part, row = 1, 0
    ws = book.add_worksheet(category.value)
    ws.write_row(0, 0, CSV_COLUMNS, bold)
    for start in range(0, report.count(category), 10_000):
        chunk = report.table(category, start=start, length=10_000).select(CSV_COLUMNS)
        writers = writers or [_cell_writer(name, dtype, money, when, quoted)
                              for name, dtype in chunk.schema.items()]  # fmt: skip
        for values in chunk.iter_rows():
            row += 1
            if row == _XLSX_MAX_ROWS:
                part += 1
                ws = book.add_worksheet(f"{category.value} ({part})")
                ws.write_row(0, 0, CSV_COLUMNS, bold)
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
