"""Reading a statement or an invoice list into a frame, fast.

CSV is read by polars as text (any encoding is first re-encoded to UTF-8); XLSX by
calamine (``xlsx``), after its bounds are checked. The header is found by
``columns.find_header`` on the first rows. Cells are parsed with vectorised short
cuts only for forms where they agree with ``values`` (``1234567``, ``1.234.567``,
``dd/mm/yyyy hh:mm:ss``, ...); other distinct values go through ``values`` itself.
A file the short cuts cannot finish (a cell that does not parse, a separate time
column, a line break inside a quoted title) goes to the row reader in ``sources``,
which reads it or raises the precise error with its row and column.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from typing import Any

import polars as pl

from .._exceptions import InputFileError, ReconcileError
from .codes import code_columns, finish_cards
from .columns import HEADER_SEARCH_ROWS, ColumnMapping, Header, Role, find_header
from .model import APPROVED, Side, kind_dtype, side_schema
from .sources import (
    FOOTER_WORDS,
    MAX_CELL_CHARS,
    decode_bytes,
    file_kind,
    side_from_rows,
    sniff_csv,
)
from .values import (
    MAX_AMOUNT,
    STRIP_CHARS,
    Kind,
    cell_text,
    fold,
    parse_amount,
    parse_datetime,
    parse_kind,
    parse_status,
)
from .xlsx import check_workbook, read_sheet

__all__ = ["read_frame"]

_KIND = kind_dtype()


class _Unusual(ReconcileError):
    """Internal, never raised out of this module: the file needs the row reader."""


def read_frame(
    path: str, role: Role, mapping: ColumnMapping | None = None
) -> tuple[pl.DataFrame, int]:
    """Read a statement or invoice list into a frame of ``side_schema()``.

    Also returns how many rows were left out (declined in a status column).
    """
    if file_kind(path) == "xlsx":
        return _read_xlsx(path, role, mapping)
    return _read_csv(path, role, mapping)


# --- CSV ----------------------------------------------------------------------------------

_HEAD_BYTES = 1 << 16


def _read_csv(
    path: str, role: Role, mapping: ColumnMapping | None
) -> tuple[pl.DataFrame, int]:
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head_bytes = fh.read(_HEAD_BYTES)
    except OSError as exc:
        raise InputFileError(path, f"cannot read: {exc.strerror}") from None
    source: str | io.BytesIO = path
    utf8 = True
    try:
        head_bytes.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # Cut in the middle of a character at the end of the head is still UTF-8.
        utf8 = size > _HEAD_BYTES and exc.start >= len(head_bytes) - 3
    if head_bytes.startswith((b"\xff\xfe", b"\xfe\xff")) or not utf8:
        text = decode_bytes(_read_all(path), path)
        source = io.BytesIO(text.encode("utf-8"))
        head_bytes = source.getvalue()[:_HEAD_BYTES]
        size = len(source.getvalue())
    lines = head_bytes.decode("utf-8-sig", errors="replace").splitlines()
    if size > _HEAD_BYTES:
        lines = lines[:-1]  # may be cut in the middle
    head = "\n".join(lines[:HEADER_SEARCH_ROWS])
    delimiter = sniff_csv(head, mapping)
    head_rows: list[list[str]] = list(csv.reader(io.StringIO(head), delimiter=delimiter))
    header = find_header(head_rows, path, role, mapping)
    try:
        if any("\n" in c or "\r" in c for row in head_rows[: header.index + 1] for c in row):
            raise _Unusual  # polars would count the title's lines, not its rows
        width = max(header.width, *(c + 1 for c in header.columns.values()))
        try:
            data = pl.read_csv(
                source,
                has_header=False,
                skip_rows=header.index + 1,
                separator=delimiter,
                schema=dict.fromkeys((f"c{i}" for i in range(width)), pl.String),
                truncate_ragged_lines=True,
                encoding="utf8",
                raise_if_empty=False,
            )
        except Exception:  # any complaint from polars: the row reader judges the file
            raise _Unusual from None
        return _parse(data, header, mapping, path, header.index + 2)
    except _Unusual:
        pass
    raw = source.getvalue() if isinstance(source, io.BytesIO) else _read_all(path)
    text = decode_bytes(raw, path)
    rows = _csv_rows(text, delimiter, path)
    header = find_header(rows, path, role, mapping)
    return _from_side(side_from_rows(path, role, rows, header, mapping))


def _read_all(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise InputFileError(path, f"cannot read: {exc.strerror}") from None


def _csv_rows(text: str, delimiter: str, path: str) -> list[list[object]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        return [list(r) for r in reader]
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise InputFileError(
                path, f"a cell is longer than {MAX_CELL_CHARS:,} characters", row=reader.line_num
            ) from None
        raise InputFileError(path, f"not a readable CSV file: {exc}") from None


def _from_side(side: Side) -> tuple[pl.DataFrame, int]:
    return side.to_frame(), side.dropped


# --- XLSX ---------------------------------------------------------------------------------


def _read_xlsx(
    path: str, role: Role, mapping: ColumnMapping | None
) -> tuple[pl.DataFrame, int]:
    sheets = check_workbook(path)
    chosen: tuple[pl.DataFrame, int, Header] | None = None
    first_error: InputFileError | None = None
    for index, sheet in enumerate(sheets):
        raw = read_sheet(path, index)
        head = [list(r) for r in raw.head(HEADER_SEARCH_ROWS).rows()]
        try:
            header = find_header(head, path, role, mapping)
        except InputFileError as exc:
            first_error = first_error or exc
            continue
        chosen = (raw, sheet.first_row, header)
        break
    if chosen is None:
        raise first_error or InputFileError(path, "empty file")
    raw, first_row, header = chosen
    data = raw.slice(header.index + 1)
    try:
        return _parse(data, header, mapping, path, first_row + header.index + 1)
    except _Unusual:
        pass
    rows: list[list[object]] = [[None]] * (first_row - 1) + [list(r) for r in raw.rows()]
    header = find_header(rows[: first_row - 1 + HEADER_SEARCH_ROWS], path, role, mapping)
    return _from_side(side_from_rows(path, role, rows, header, mapping))


# --- cells -------------------------------------------------------------------------------


def _strip(e: pl.Expr) -> pl.Expr:
    return e.str.strip_chars(STRIP_CHARS)


# (pattern, separator to delete): grouped forms on which values.parse_amount provably
# agrees (``1.000`` is a thousand under both: grouping wins over decimals). Plain
# digits need no pattern: an integer cast accepts exactly ``[+-]?[0-9]+``, as the
# standard parser does.
_AMOUNT_GROUPED = (
    (r"^[0-9]{1,3}(?:\.[0-9]{3})+$", "."),
    (r"^[0-9]{1,3}(?:,[0-9]{3})+$", ","),
)
_DATE_FAST = (
    (r"^[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}$", "%d/%m/%Y %H:%M:%S"),
    (r"^[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}$", "%d/%m/%Y %H:%M"),
    (r"^[0-9]{2}/[0-9]{2}/[0-9]{4}$", "%d/%m/%Y"),
    (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$", "%Y-%m-%dT%H:%M:%S"),
    (r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$", "%Y-%m-%d %H:%M:%S"),
    (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "%Y-%m-%d"),
)
_SLOW_LIMIT = 200_000
"""Distinct values past which parsing the rest in Python is no longer worth it."""


def _amount_grouped(text: pl.Series) -> pl.Series:
    """Grouped amounts (``1.234.567``) among the cells a plain cast could not read."""
    s = pl.col("s")
    expr: pl.Expr = pl.lit(None, pl.Int64)
    for pattern, separator in reversed(_AMOUNT_GROUPED):
        value = s.str.replace_all(separator, "", literal=True).cast(pl.Int64, strict=False)
        expr = pl.when(s.str.contains(pattern)).then(value).otherwise(expr)
    return pl.DataFrame({"s": text}).select(expr).to_series()


def _amount_fast(s: pl.Expr, sample: str | None) -> pl.Expr:
    """Amounts, vectorised: plain digits by a cast; and when the first row's amount is
    grouped (``1.234.567``, as invoice lists write them), that grouping too, in the same
    pass (null where both fail: ``_amount_grouped`` and ``values`` see those)."""
    import re

    plain = s.cast(pl.Int64, strict=False)
    grouped = next((g for g in _AMOUNT_GROUPED if sample and re.fullmatch(g[0], sample)), None)
    if grouped is None:
        return plain
    pattern, separator = grouped
    value = s.str.replace_all(separator, "", literal=True).cast(pl.Int64, strict=False)
    return pl.when(s.str.contains(pattern)).then(value).otherwise(plain)


def _date_fast(s: pl.Expr, sample: str | None) -> pl.Expr:
    """Dates in the format of the first row, vectorised (null where that fails)."""
    import re

    fast = next(((p, f) for p, f in _DATE_FAST if sample and re.fullmatch(p, sample)), None)
    if fast is None:
        return pl.lit(None, pl.Datetime("us"))
    # No cache: nearly every time differs, and a cache of a million values is slow.
    parsed = s.str.strptime(pl.Datetime("us"), fast[1], strict=False, cache=False)
    # Years 1900..2200, as ``values`` accepts; compared as times, cheaper than the year.
    plausible = parsed.is_between(
        pl.datetime(1900, 1, 1, time_unit="us"), pl.datetime(2201, 1, 1, time_unit="us"),
        closed="left",
    )
    return pl.when(plausible & s.str.contains(fast[0])).then(parsed).otherwise(None)


def _check_cell_sizes(data: pl.DataFrame, header: Header, path: str, first_row: int) -> None:
    """Refuse a cell longer than a spreadsheet cell can be, naming its row and column."""
    longest = data.select(pl.all().str.len_bytes().max())
    for name, most in longest.row(0, named=True).items():
        if most is None or most <= MAX_CELL_CHARS:
            continue  # bytes >= characters: nothing to look at
        chars = data.get_column(name).str.len_chars()
        if (chars.max() or 0) <= MAX_CELL_CHARS:  # type: ignore[operator]
            continue
        at = int((chars > MAX_CELL_CHARS).arg_true()[0])
        column = int(name[1:])
        named = {c: f for f, c in header.columns.items()}
        where = header.names[named[column]] if column in named else f"#{column + 1}"
        raise InputFileError(
            path,
            f"a cell holds {chars[at]:,} characters, more than the {MAX_CELL_CHARS:,} "
            "a spreadsheet cell can",
            row=first_row + at,
            column=where,
        )


def _parse(
    data: pl.DataFrame,
    header: Header,
    mapping: ColumnMapping | None,
    path: str,
    first_row: int,
) -> tuple[pl.DataFrame, int]:
    """Cells to typed columns: one vectorised pass, then Python for what it left.

    ``first_row`` is the 1-based row number of ``data``'s first row. Any complaint of
    polars about a cell sends the file to the row reader, which names it.
    """
    try:
        return _parse_cells(data, header, mapping, path, first_row)
    except pl.exceptions.PolarsError:
        raise _Unusual from None


def _parse_cells(
    data: pl.DataFrame,
    header: Header,
    mapping: ColumnMapping | None,
    path: str,
    first_row: int,
) -> tuple[pl.DataFrame, int]:
    _check_cell_sizes(data, header, path, first_row)
    cols = header.columns
    if "time" in cols and "date" in cols:
        raise _Unusual
    cells = list(data.columns)
    date_name = "date" if "date" in cols else ("time" if "time" in cols else None)

    def text(name: str) -> pl.Expr:
        return _strip(pl.col(f"c{cols[name]}")) if name in cols else pl.lit(None, pl.String)

    def filled(name: str, cell: pl.Expr) -> pl.Expr:
        """``cell`` (column ``name``'s text, or what is made of it), '' where empty.
        A column with no empty cell (nearly all) is not copied to fill none."""
        if name in cols and not data.get_column(f"c{cols[name]}").null_count():
            return cell.alias(name)
        return cell.fill_null("").alias(name)

    def sample(name: str | None) -> str | None:
        """Column ``name``'s first value, stripped: which fast form to try."""
        if name is None or name not in cols:
            return None
        first = data.get_column(f"c{cols[name]}").drop_nulls().head(1).to_list()
        return first[0].strip(STRIP_CHARS) if first else None
    date = text(date_name) if date_name else pl.lit(None, pl.String)
    approval = text("approval").str.to_uppercase()
    ref_no = text("ref_no").str.to_uppercase()
    # Rows that might be a totals footer: no date (or no date column and no digit in
    # the first cell); their first cell is kept for the footer rule.
    first_cell = pl.coalesce([pl.col(c) for c in cells])
    maybe_footer = (
        date.is_null() | (date == "")
        if date_name
        else ~first_cell.str.contains("[0-9]").fill_null(False)
    )
    # Type and status have few distinct values: parse those once, map in the pass.
    types = dict(mapping.types) if mapping else {}
    kind_of = (
        _lookup_table(data, cols["type"], lambda v: (
            parse_kind(v, types).value if cell_text(v) else None), _KIND, nulls=True)
        if "type" in cols else pl.lit(None, _KIND)
    )  # fmt: skip
    ok = (
        _lookup_table(data, cols["status"], parse_status, pl.Boolean, nulls=False)
        if "status" in cols else pl.lit(True)
    )  # fmt: skip
    amount = _amount_fast(text("amount"), sample("amount"))
    # One pass builds every column; the cells' own text is looked up again (``row``)
    # only for the few values that pass leaves null, and checks that hold for a whole
    # column (e.g. no approval code short enough to pad) are made once on the result.
    frame = (
        data.lazy()
        .with_row_index("row", offset=first_row)
        # Blank rows are skipped; a row of only spaces is not caught here, but its
        # empty amount sends the file to the row reader, which skips it.
        .filter(~pl.all_horizontal([pl.col(c).is_null() for c in cells]))
        .select(
            pl.col("row").cast(pl.Int64),
            amount.alias("amount"),
            _date_fast(date, sample(date_name)).alias("time"),
            kind_of.alias("_type"),
            pl.when(kind_of.is_not_null()).then(kind_of)
            .when(amount < 0).then(pl.lit(Kind.VOID.value, _KIND))
            .otherwise(pl.lit(Kind.SALE.value, _KIND)).alias("kind"),
            ok.alias("_ok"),
            filled("invoice", text("invoice").str.to_uppercase()),
            *(filled(name, text(name))
              for name in ("reference", "card", "tid", "mid", "batch", "receipt")),
            filled("approval", approval),
            filled("ref_no", ref_no),
            pl.when(maybe_footer).then(first_cell).otherwise(None).alias("_first"),
        )
        .collect()
    )  # fmt: skip
    frame = frame.with_columns(code_columns(frame))
    frame = _drop_footers(frame)
    dropped = 0
    if "status" in cols:
        ok_rows = frame.get_column("_ok")
        dropped = int((~ok_rows).sum())
        if dropped:
            frame = frame.filter(ok_rows)

    def cells_of(name: str, rows: pl.Series) -> pl.Series:
        """The stripped cells of column ``name`` on the rows where ``rows`` is true."""
        at = (frame.get_column("row").filter(rows) - first_row).cast(pl.UInt32)
        return data.get_column(f"c{cols[name]}").gather(at).str.strip_chars(STRIP_CHARS)

    fast_amount = frame.get_column("amount")
    if fast_amount.null_count():
        unread = fast_amount.is_null()
        grouped = _amount_grouped(cells_of("amount", unread))
        frame = frame.with_columns(fast_amount.scatter(unread.arg_true(), grouped))
    slow: list[tuple[str, Callable[[pl.Series], pl.Series], Callable[[str], Any]]] = [
        ("amount", lambda rows: cells_of("amount", rows), parse_amount),
    ]
    if date_name is not None:
        dates = date_name

        def dates_of(rows: pl.Series) -> pl.Series:
            return cells_of(dates, rows)

        slow.insert(1, ("time", dates_of, parse_datetime))
    for name, texts_of, parse in slow:
        column = frame.get_column(name)
        if column.null_count():
            missing = column.is_null()
            parsed = _parse_slow(texts_of(missing), parse, column.dtype)
            frame = frame.with_columns(column.scatter(missing.arg_true(), parsed))
    if (fast_amount.is_null() & frame.get_column("_type").is_null()).any():
        # Untyped rows whose amount was read the slow way: their sign decides again.
        frame = frame.with_columns(
            pl.when(pl.col("_type").is_not_null()).then(pl.col("_type"))
            .when(pl.col("amount") < 0).then(pl.lit(Kind.VOID.value, _KIND))
            .otherwise(pl.lit(Kind.SALE.value, _KIND)).alias("kind")
        )  # fmt: skip
    negative_sale, largest = frame.select(
        ((pl.col("amount") < 0) & (pl.col("kind") == Kind.SALE.value)).any().alias("neg"),
        pl.col("amount").abs().max().alias("max"),
    ).row(0)
    if negative_sale or (largest or 0) > MAX_AMOUNT:
        raise _Unusual
    frame = finish_cards(frame)
    frame = frame.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("idx"),
        pl.col("amount").abs(),
        pl.lit(APPROVED).alias("state"),
        pl.lit(-1, pl.Int64).alias("link"),
        pl.lit(False).alias("unsettled"),
        pl.lit(None, pl.Int64).alias("entry"),
    )
    return frame.select(list(side_schema())), dropped


def _lookup_table(
    data: pl.DataFrame, column: int, parse: Callable[[str], Any], dtype: Any, *, nulls: bool
) -> pl.Expr:
    """Column ``c{column}`` mapped through ``parse``, each distinct raw value parsed once.

    Without ``nulls``, an empty cell is left to the row reader to name.
    """
    raw = data.get_column(f"c{column}")
    if not nulls and raw.null_count():
        raise _Unusual
    table = _parse_distinct(raw, parse)
    return pl.col(f"c{column}").replace_strict(table, default=None, return_dtype=dtype)


def _parse_slow(texts: pl.Series, parse: Callable[[str], Any], dtype: Any) -> pl.Series:
    """``texts`` (the cells the vectorised pass left null) parsed by ``values``, each
    distinct one once."""
    if texts.null_count():
        raise _Unusual  # an empty required cell: the row reader names it
    table = _parse_distinct(texts, parse)
    return texts.replace_strict(table, default=None, return_dtype=dtype)


def _drop_footers(frame: pl.DataFrame) -> pl.DataFrame:
    """Drop totals rows, by the rule of ``sources``: the first non-empty cell says so.

    A cell of spaces before the word hides it here; such a row then fails to parse
    and the row reader, which strips cells first, drops it.
    """
    candidates = frame.get_column("_first").drop_nulls().unique().to_list()
    words = [v for v in candidates if fold(v).rstrip(" :") in FOOTER_WORDS]
    if words:
        frame = frame.filter(~pl.col("_first").is_in(words).fill_null(False))
    return frame


def _parse_distinct(values: pl.Series, parse: Callable[[str], Any]) -> dict[str, Any]:
    """Each distinct non-null value parsed once by ``values`` (for columns with few
    of them); too many, or one that does not parse: the row reader's job."""
    uniques = values.drop_nulls().unique()
    if len(uniques) > _SLOW_LIMIT:
        raise _Unusual
    try:
        return {u: parse(u) for u in uniques.to_list()}
    except ReconcileError:
        raise _Unusual from None
