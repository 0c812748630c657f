"""The polars engine: the rules of ``matcher`` on columns, for months of data.

Optional (``pip install 'ecrlink[reconcile]'``). It must give exactly what
``matcher.match`` gives; the tests compare both on generated data.

Reading: a UTF-8 CSV is read by polars as text, the header found by
``columns.find_header`` on its first rows. Cells are parsed with vectorised short
cuts only for forms where they agree with ``values`` (``1234567``, ``1.234.567``,
``dd/mm/yyyy hh:mm:ss``, ...); other distinct values go through ``values`` itself.
Anything unusual (a cell that does not parse, quoted line breaks, UTF-16, a
separate time column, XLSX) is handed to the standard-library reader, which either
reads it or raises the precise error with its row and column.
"""

from __future__ import annotations

import csv
import io
import mmap
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from .._exceptions import ReconcileError
from ..journal.records import Entry
from .columns import HEADER_SEARCH_ROWS, ColumnMapping, Header, Role, find_header
from .matcher import EXACT_KEYS, LOOSE_KEYS, VOID_KEYS, Outcome, text_columns
from .model import APPROVED, TEXT_FIELDS, UNSETTLED, Category, MatchKey, Side
from .sources import FOOTER_WORDS, LEND_KEYS, LENT_FIELDS, file_kind, read_side, sniff_csv
from .values import (
    MAX_AMOUNT,
    STRIP_CHARS,
    Kind,
    card_last4,
    cell_text,
    fold,
    mask_card,
    parse_amount,
    parse_datetime,
    parse_kind,
    parse_status,
)

__all__ = [
    "FastResult",
    "enrich_frame",
    "frame_to_side",
    "in_period",
    "load_rows",
    "match_frames",
    "pending_entries",
    "read_frame",
    "side_to_frame",
    "summary_of",
    "to_outcome",
]

_KIND = pl.Enum([k.value for k in Kind])
"""Kinds as a polars enum: one byte per row, cheap to hash and compare."""
_SCHEMA: dict[str, Any] = {
    "idx": pl.Int64,
    "row": pl.Int64,
    "kind": _KIND,
    "amount": pl.Int64,
    "time": pl.Datetime("us"),
    **dict.fromkeys(TEXT_FIELDS, pl.String),
    "state": pl.String,
    "link": pl.Int64,
}


class _Unusual(ReconcileError):
    """Internal, never raised out of this module: the file needs the standard reader."""


# --- reading -------------------------------------------------------------------------


def read_frame(
    path: str, role: Role, mapping: ColumnMapping | None = None
) -> tuple[pl.DataFrame, int]:
    """Read a statement or invoice list into a frame of ``_SCHEMA`` columns.

    Also returns how many rows were left out (declined in a status column).
    """
    if file_kind(path) == "csv":
        try:
            return _read_csv(path, role, mapping)
        except _Unusual:
            pass
    side = read_side(path, role, mapping)
    return side_to_frame(side), side.dropped


_HEAD_BYTES = 1 << 16


def _read_csv(
    path: str, role: Role, mapping: ColumnMapping | None
) -> tuple[pl.DataFrame, int]:
    try:
        # Mapped, not read: polars reads the file itself; Python only looks.
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as raw:
            head_bytes = raw[:_HEAD_BYTES]
            whole = len(raw) <= _HEAD_BYTES
            # A quoted line break: only the csv module counts rows right.
            quoted_break = raw.find(b'"') >= 0 and _ODD_QUOTES.search(raw) is not None
    except (OSError, ValueError):  # ValueError: an empty file cannot be mapped
        raise _Unusual from None
    if quoted_break or head_bytes.startswith((b"\xff\xfe", b"\xfe\xff")) or not head_bytes.strip():
        raise _Unusual
    lines = head_bytes.decode("utf-8-sig", errors="replace").splitlines()
    if not whole:
        lines = lines[:-1]  # may be cut in the middle
    head = "\n".join(lines[:HEADER_SEARCH_ROWS])
    delimiter = sniff_csv(head, mapping)
    head_rows: list[list[str]] = list(csv.reader(io.StringIO(head), delimiter=delimiter))
    try:
        header = find_header(head_rows, path, role, mapping)
    except ReconcileError:
        raise _Unusual from None
    if "time" in header.columns and "date" in header.columns:
        raise _Unusual
    width = max(header.width, *(c + 1 for c in header.columns.values()))
    try:
        data = pl.read_csv(
            path,
            has_header=False,
            skip_rows=header.index + 1,
            separator=delimiter,
            schema=dict.fromkeys((f"c{i}" for i in range(width)), pl.String),
            truncate_ragged_lines=True,
            encoding="utf8",
            raise_if_empty=False,
        )
    except Exception:  # any complaint from polars: the reference reader judges the file
        raise _Unusual from None
    return _parse(data, header, mapping)


# A line with an odd number of quotes opens a quoted field that goes on to the next line.
_ODD_QUOTES = re.compile(rb'^[^"\n]*(?:"[^"\n]*"[^"\n]*)*"[^"\n]*$', re.MULTILINE)


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


def _date_fast(s: pl.Expr, sample: str | None) -> pl.Expr:
    """Dates in the format of the first row, vectorised (null where that fails)."""
    fast = next(((p, f) for p, f in _DATE_FAST if sample and re.fullmatch(p, sample)), None)
    if fast is None:
        return pl.lit(None, pl.Datetime("us"))
    parsed = s.str.strptime(pl.Datetime("us"), fast[1], strict=False)
    year = parsed.dt.year()
    return (
        pl.when(s.str.contains(fast[0]) & (year >= 1900) & (year <= 2200))
        .then(parsed)
        .otherwise(None)
    )


def _last4_fast(card: pl.Expr) -> pl.Expr:
    """``values.card_last4`` where the number ends in 4 digits (nearly always);
    null where only ``values`` can say (ends in a digit, but not four)."""
    tail = card.str.slice(-4)
    return (
        pl.when(card.is_null()).then(pl.lit(""))
        .when(tail.str.contains("^[0-9]{4}$")).then(tail)
        .when(tail.str.contains("[0-9]$")).then(None)
        .otherwise(pl.lit(""))
    )  # fmt: skip


def _parse(
    data: pl.DataFrame, header: Header, mapping: ColumnMapping | None
) -> tuple[pl.DataFrame, int]:
    """Cells to typed columns: one vectorised pass, then Python for what it left."""
    cols = header.columns
    cells = list(data.columns)
    date_name = "date" if "date" in cols else ("time" if "time" in cols else None)

    def text(name: str) -> pl.Expr:
        return _strip(pl.col(f"c{cols[name]}")) if name in cols else pl.lit(None, pl.String)

    sample = None
    if date_name:
        first = data.get_column(f"c{cols[date_name]}").drop_nulls().head(1).to_list()
        sample = first[0].strip(STRIP_CHARS) if first else None
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
    amount = text("amount").cast(pl.Int64, strict=False)
    frame = (
        data.lazy()
        .with_row_index("row", offset=header.index + 2)
        # Blank rows are skipped; a row of only spaces is not caught here, but its
        # empty amount sends the file to the standard reader, which skips it.
        .filter(~pl.all_horizontal([pl.col(c).is_null() for c in cells]))
        .select(
            pl.col("row").cast(pl.Int64),
            text("amount").alias("_amount_text"),
            amount.alias("amount"),
            date.alias("_date_text"),
            _date_fast(date, sample).alias("time"),
            kind_of.alias("_type"),
            pl.when(kind_of.is_not_null()).then(kind_of)
            .when(amount < 0).then(pl.lit(Kind.VOID.value, _KIND))
            .otherwise(pl.lit(Kind.SALE.value, _KIND)).alias("kind"),
            ok.alias("_ok"),
            text("invoice").str.to_uppercase().fill_null("").alias("invoice"),
            *(text(name).fill_null("").alias(name)
              for name in ("reference", "card", "tid", "mid", "batch", "receipt")),
            _last4_fast(text("card")).alias("last4"),
            pl.when(approval.str.contains("^[0-9]{1,5}$")).then(approval.str.zfill(6))
            .otherwise(approval).fill_null("").alias("approval"),
            pl.when(ref_no.str.contains("^[0-9]{1,11}$")).then(ref_no.str.zfill(12))
            .otherwise(ref_no).fill_null("").alias("ref_no"),
            pl.when(maybe_footer).then(first_cell).otherwise(None).alias("_first"),
        )
        .collect()
    )
    frame = _drop_footers(frame)
    dropped = 0
    if "status" in cols:
        ok_rows = frame.get_column("_ok")
        dropped = int((~ok_rows).sum())
        if dropped:
            frame = frame.filter(ok_rows)
    fast_amount = frame.get_column("amount")
    if fast_amount.null_count():
        unread = fast_amount.is_null()
        grouped = _amount_grouped(frame.get_column("_amount_text").filter(unread))
        frame = frame.with_columns(fast_amount.scatter(unread.arg_true(), grouped))
    fills = [
        fill for fill in (
            _fill_slow(frame, "amount", "_amount_text", parse_amount, pl.Int64),
            _fill_slow(frame, "time", "_date_text", parse_datetime, pl.Datetime("us"))
            if date_name else None,
            _fill_slow(frame, "last4", "card", card_last4, pl.String),
        ) if fill is not None
    ]  # fmt: skip
    if fills:
        frame = frame.with_columns(fills)
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
    cards = frame.get_column("card").unique()
    if cards.str.contains("(?:[0-9][^0-9]*){11}").any():
        masked = _parse_distinct(cards, mask_card)
        frame = frame.with_columns(
            pl.col("card").replace_strict(masked, default=None, return_dtype=pl.String)
        )
    frame = frame.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("idx"),
        pl.col("amount").abs(),
        pl.lit(APPROVED).alias("state"),
        pl.lit(-1, pl.Int64).alias("link"),
    )
    return frame.select(list(_SCHEMA)), dropped


def _lookup_table(
    data: pl.DataFrame, column: int, parse: Callable[[str], Any], dtype: Any, *, nulls: bool
) -> pl.Expr:
    """Column ``c{column}`` mapped through ``parse``, each distinct raw value parsed once.

    Without ``nulls``, an empty cell is left to the standard reader to name.
    """
    raw = data.get_column(f"c{column}")
    if not nulls and raw.null_count():
        raise _Unusual
    table = _parse_distinct(raw, parse)
    return pl.col(f"c{column}").replace_strict(table, default=None, return_dtype=dtype)


def _fill_slow(
    frame: pl.DataFrame, name: str, source: str, parse: Callable[[str], Any], dtype: Any
) -> pl.Expr | None:
    """Column ``name`` with its nulls parsed by ``values`` from ``source`` (None: no
    nulls, nothing to do)."""
    column = frame.get_column(name)
    if column.null_count() == 0:
        return None
    rest = frame.get_column(source).filter(column.is_null())
    if rest.null_count():
        raise _Unusual  # an empty required cell: the standard reader names it
    table = _parse_distinct(rest, parse)
    return pl.col(name).fill_null(
        pl.col(source).replace_strict(table, default=None, return_dtype=dtype)
    )


def _drop_footers(frame: pl.DataFrame) -> pl.DataFrame:
    """Drop totals rows, by the rule of ``sources``: the first non-empty cell says so.

    A cell of spaces before the word hides it here; such a row then fails to parse
    and the standard reader, which strips cells first, drops it.
    """
    candidates = frame.get_column("_first").drop_nulls().unique().to_list()
    words = [v for v in candidates if fold(v).rstrip(" :") in FOOTER_WORDS]
    if words:
        frame = frame.filter(~pl.col("_first").is_in(words).fill_null(False))
    return frame


def _parse_distinct(values: pl.Series, parse: Callable[[str], Any]) -> dict[str, Any]:
    """Each distinct non-null value parsed once by ``values`` (for columns with few
    of them); too many, or one that does not parse: the standard reader's job."""
    uniques = values.drop_nulls().unique()
    if len(uniques) > _SLOW_LIMIT:
        raise _Unusual
    try:
        return {u: parse(u) for u in uniques.to_list()}
    except ReconcileError:
        raise _Unusual from None


def side_to_frame(side: Side) -> pl.DataFrame:
    """A standard-library side as a frame (for XLSX files, the journal, odd files)."""
    frame = pl.DataFrame(
        {
            "idx": list(range(len(side))),
            "row": side.row,
            "kind": [k.value for k in side.kind],
            "amount": side.amount,
            "time": side.time,
            **{name: getattr(side, name) for name in TEXT_FIELDS},
            "state": side.state,
            "link": side.link,
        },
        schema=_SCHEMA,
    )
    return frame


def frame_to_side(frame: pl.DataFrame, source: str, entries: list[Entry | None] | None) -> Side:
    """Back to columns of Python values, to write report rows."""
    side = Side(source)
    side.row = frame.get_column("row").to_list()
    side.kind = [Kind(k) for k in frame.get_column("kind").to_list()]
    side.amount = frame.get_column("amount").to_list()
    side.time = frame.get_column("time").to_list()
    for name in TEXT_FIELDS:
        setattr(side, name, frame.get_column(name).to_list())
    side.state = frame.get_column("state").to_list()
    side.link = frame.get_column("link").to_list()
    side.entry = entries if entries is not None else [None] * len(side)
    return side


# --- matching ------------------------------------------------------------------------

_MATCH_COLUMNS = ["idx", "kind", "amount", "time", "invoice", "last4", "approval", "ref_no",
                  "state", "link"]  # fmt: skip
_PAIR = pl.Schema(
    {"r": pl.Int64, "b": pl.Int64, "key": pl.String, "ra": pl.Int64, "ba": pl.Int64}
)


def _has(keys: tuple[str, ...]) -> pl.Expr:
    return pl.all_horizontal([pl.col(k) != "" for k in text_columns(keys)])


def _ranked(frame: pl.DataFrame, keys: tuple[str, ...], order: list[str]) -> pl.DataFrame:
    """Rows with the key, each with ``_n``: its place among rows of the same key.

    Nearly every key is unique, and a window over millions of string keys is slow:
    so only rows whose key hash repeats are ranked (by their exact key); the rest
    are first of their key. A hash collision only puts unique keys in the ranked
    part, where the exact key still decides.
    """
    carried = [c for c in ("amount", "time") if c not in keys]
    rows = frame.filter(_has(keys)).select(*keys, *[c for c in order if c not in carried],
                                           *carried, "idx")
    rows = rows.with_columns(pl.struct(list(keys)).hash(seed=0).alias("_h"))
    out = [*keys, *carried, "_h", "_n", "idx"]
    hashes = rows.get_column("_h")
    if hashes.n_unique() == len(hashes):  # cheaper than is_duplicated, and common
        return rows.with_columns(pl.lit(0, pl.Int64).alias("_n")).select(out)
    repeated = hashes.is_duplicated()
    ranked = (
        rows.filter(repeated)
        .sort([*order, "idx"], nulls_last=True)
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over(list(keys)).alias("_n"))
    )
    single = rows.filter(~repeated).with_columns(pl.lit(0, pl.Int64).alias("_n"))
    return pl.concat([single.select(out), ranked.select(out)], how="vertical")


_JOINED: dict[str, Any] = {"l": pl.Int64, "r": pl.Int64, "l_amount": pl.Int64, "r_amount": pl.Int64,
           "l_time": pl.Datetime("us"), "r_time": pl.Datetime("us")}  # fmt: skip


def _rank_join(
    left: pl.DataFrame,
    left_order: list[str],
    right: pl.DataFrame,
    right_order: list[str],
    keys: tuple[str, ...],
) -> pl.DataFrame:
    """The n-th left row of a key with the n-th right row.

    Joined on (key hash, n), then filtered on the exact key, which gives the same
    pairs as joining on the exact key. Returns indices ``l``, ``r`` and both rows'
    amount and time.
    """
    if left.height == 0 or right.height == 0:
        return pl.DataFrame(schema=_JOINED)
    lk = _ranked(left, keys, left_order)
    rk = _ranked(right, keys, right_order)
    same = pl.all_horizontal([pl.col(k) == pl.col(f"{k}_r") for k in keys])
    # Lazy, so the key strings are compared without materialising the joined frame.
    return (
        lk.lazy()
        .join(rk.lazy(), on=["_h", "_n"], how="inner", suffix="_r")
        .filter(same)
        .select(
            pl.col("idx").alias("l"),
            pl.col("idx_r").alias("r"),
            pl.col("amount").alias("l_amount"),
            pl.col("amount" if "amount" in keys else "amount_r").alias("r_amount"),
            pl.col("time").alias("l_time"),
            pl.col("time_r").alias("r_time"),
        )
        .collect()
    )


def _without(frame: pl.DataFrame, idx: pl.Series) -> pl.DataFrame:
    return frame.filter(~pl.col("idx").is_in(idx.implode()))


def _cascade(
    reg: pl.DataFrame,
    bank: pl.DataFrame,
    window: timedelta,
    *,
    loose: bool,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Pairs (r, b, key, ra, ba) and the rows left on each side (rules of matcher)."""
    reg = reg.with_columns((pl.col("state") != APPROVED).alias("_doubt"))
    found: list[pl.DataFrame] = []
    stages = EXACT_KEYS + (LOOSE_KEYS if loose else ())
    for n, (name, keys) in enumerate(stages):
        if reg.height == 0 or bank.height == 0:
            break
        exact = n < len(EXACT_KEYS)
        candidates = reg if exact else reg.filter(pl.col("state") == APPROVED)
        pairs = _rank_join(candidates, ["_doubt", "time"], bank, ["time"], keys)
        if name is MatchKey.CARD_APPROVAL:
            gap = (pl.col("l_time") - pl.col("r_time")).abs()
            pairs = pairs.filter(
                pl.col("l_time").is_null() | pl.col("r_time").is_null() | (gap <= window)
            )
        if pairs.height == 0:
            continue
        found.append(pairs.select(
            pl.col("l").alias("r"), pl.col("r").alias("b"), pl.lit(name.value).alias("key"),
            pl.col("l_amount").alias("ra"), pl.col("r_amount").alias("ba"),
        ))
        reg = _without(reg, pairs.get_column("l"))
        bank = _without(bank, pairs.get_column("r"))
    all_pairs = pl.concat(found) if found else pl.DataFrame(schema=_PAIR)
    return all_pairs, reg.drop("_doubt"), bank


def _pair_voids(side: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Step 1: frame (sale, void) and the voids left alone.

    Voids are few: only the sales a void names or shares a key with are looked at.
    """
    is_sale = (pl.col("kind") == Kind.SALE.value) & (pl.col("state") == APPROVED)
    voids = side.filter(pl.col("kind") == Kind.VOID.value)
    schema = {"sale": pl.Int64, "void": pl.Int64}
    if voids.height == 0:
        return pl.DataFrame(schema=schema), voids
    pairs: list[pl.DataFrame] = []
    taken = pl.Series("sale", [], dtype=pl.Int64)
    with_link = voids.filter(pl.col("link") >= 0)
    if with_link.height:
        linked = (
            with_link.sort(["time", "idx"], nulls_last=True)
            .unique(subset="link", keep="first", maintain_order=True)
            .join(side.filter(is_sale).select(pl.col("idx").alias("link")), on="link",
                  how="semi")
            .select(pl.col("link").alias("sale"), pl.col("idx").alias("void"))
        )
        taken = linked.get_column("sale")
        pairs.append(linked)
        voids = _without(voids, linked.get_column("void"))
    for keys in VOID_KEYS:
        near = (
            side.join(voids.select(keys), on=list(keys), how="semi")
            .filter(is_sale & ~pl.col("idx").is_in(taken.implode()))
        )
        found = _rank_join(voids, ["time"], near, ["time"], keys)
        if found.height:
            found = found.select(pl.col("r").alias("sale"), pl.col("l").alias("void"))
            pairs.append(found)
            taken = pl.concat([taken, found.get_column("sale")])
            voids = _without(voids, found.get_column("void"))
    return (pl.concat(pairs) if pairs else pl.DataFrame(schema=schema)), voids


_ITEM = pl.Schema({
    "category": pl.String, "key": pl.String, "reg": pl.Int64, "bank": pl.Int64,
    "reg_void": pl.Int64, "bank_void": pl.Int64,
})  # fmt: skip


def _items(frame: pl.DataFrame, category: str | pl.Expr, **cols: str | None) -> pl.DataFrame:
    exprs: list[pl.Expr] = [
        (pl.lit(category) if isinstance(category, str) else category).alias("category")
    ]
    for name in ("key", "reg", "bank", "reg_void", "bank_void"):
        source = cols.get(name)
        dtype = _ITEM[name]
        exprs.append(
            (pl.col(source) if source else pl.lit(None)).cast(dtype).alias(name)
        )
    return frame.select(exprs)


@dataclass(frozen=True)
class FastResult:
    """The polars engine's answer: report rows as a frame, and proven entries."""

    items: pl.DataFrame
    resolved: list[tuple[int, int]]


def match_frames(
    reg: pl.DataFrame,
    bank: pl.DataFrame,
    window: timedelta,
    pending: Callable[[int], bool] | None = None,
) -> FastResult:
    """``matcher.match`` on frames. ``pending(i)`` says whether register row i is an
    in-doubt journal entry (only journal-backed rows can be)."""
    parts: list[pl.DataFrame] = []
    # Only the columns matching reads: every frame copy below is then narrower.
    reg, bank = reg.select(_MATCH_COLUMNS), bank.select(_MATCH_COLUMNS)
    reg_voids, reg_orphans = _pair_voids(reg)
    bank_voids, bank_orphans = _pair_voids(bank)

    # Step 2: voided sales across sides.
    rv = reg.join(reg_voids.select(pl.col("sale").alias("idx")), on="idx", how="semi")
    bv = bank.join(bank_voids.select(pl.col("sale").alias("idx")), on="idx", how="semi")
    pairs, rl, bl = _cascade(rv, bv, window, loose=False)
    rmap = reg_voids.rename({"sale": "r", "void": "rv"})
    bmap = bank_voids.rename({"sale": "b", "void": "bv"})
    parts.append(_items(pairs.join(rmap, on="r").join(bmap, on="b"), "voided",
                        key="key", reg="r", bank="b", reg_void="rv", bank_void="bv"))
    parts.append(_items(rl.select(pl.col("idx").alias("r")).join(rmap, on="r"), "voided",
                        reg="r", reg_void="rv"))
    parts.append(_items(bl.select(pl.col("idx").alias("b")).join(bmap, on="b"), "voided",
                        bank="b", bank_void="bv"))

    # Step 3: voids alone on their side.
    pairs, rl, bl = _cascade(reg_orphans, bank_orphans, window, loose=False)
    parts.append(_items(pairs, "voided", key="key", reg_void="r", bank_void="b"))
    parts.append(_items(rl, "ecr_only", reg_void="idx"))
    parts.append(_items(bl, "bank_only", bank_void="idx"))

    # Step 4: payments.
    payments = pl.col("kind").is_in([Kind.SALE.value, Kind.REFUND.value])
    rp = reg.filter(payments & ~pl.col("idx").is_in(reg_voids.get_column("sale").implode()))
    bp = bank.filter(payments & ~pl.col("idx").is_in(bank_voids.get_column("sale").implode()))
    pairs, rl, bl = _cascade(rp, bp, window, loose=True)
    amounts = pairs
    dup = _duplicates(bp, amounts)
    amounts = amounts.with_columns(pl.col("b").is_in(dup.implode()).alias("_dup"))
    category = (
        pl.when(pl.col("_dup")).then(pl.lit("duplicate"))
        .when(pl.col("ra") == pl.col("ba")).then(pl.lit("matched"))
        .otherwise(pl.lit("amount_mismatch"))
    )  # fmt: skip
    parts.append(_items(amounts, category, key="key", reg="r", bank="b"))
    left_bank = bl.select(pl.col("idx").alias("b"))
    parts.append(_items(
        left_bank,
        pl.when(pl.col("b").is_in(dup.implode())).then(pl.lit("duplicate")).otherwise(pl.lit("bank_only")),
        bank="b",
    ))
    parts.append(_items(rl, "ecr_only", reg="idx"))

    resolved: list[tuple[int, int]] = []
    if pending is not None:
        exact = amounts.filter(pl.col("ra") == pl.col("ba")).select("r", "b").rows()
        resolved = [(r, b) for r, b in exact if pending(r)]
    return FastResult(pl.concat(parts), resolved)


def _duplicates(bank: pl.DataFrame, paired: pl.DataFrame) -> pl.Series:
    """Step 5: bank sales charging an invoice that another bank sale charged."""
    sale = (pl.col("kind") == Kind.SALE.value) & (pl.col("invoice") != "")
    # Hash first (cheap), then the exact check on the few rows whose hash repeats.
    hashed = pl.when(sale).then(pl.col("invoice").hash(seed=0))
    multi = bank.filter(sale & hashed.is_duplicated())
    multi = multi.filter(pl.col("invoice").is_duplicated())
    if multi.height == 0:
        return pl.Series("b", [], dtype=pl.Int64)
    mine = paired.filter(pl.col("b").is_in(multi.get_column("idx").implode()))
    ranked = multi.join(
        mine.select(
            pl.col("b").alias("idx"),
            pl.when(pl.col("ra") == pl.col("ba")).then(0).otherwise(1).alias("_p"),
        ),
        on="idx",
        how="left",
    ).with_columns(pl.col("_p").fill_null(2))
    keep = ranked.sort(["_p", "time", "idx"], nulls_last=True).unique(
        subset="invoice", keep="first"
    )
    return ranked.join(keep.select("idx"), on="idx", how="anti").get_column("idx").rename("b")


def summary_of(
    items: pl.DataFrame, reg: pl.DataFrame, bank: pl.DataFrame
) -> dict[Category, tuple[int, int]]:
    """Count and amount per category (the bank's amount if it has the row)."""
    joined = items.with_columns(
        _lookup(items.get_column("bank"), bank).alias("_ba"),
        _lookup(items.get_column("reg"), reg).alias("_ra"),
        _lookup(items.get_column("bank_void"), bank).alias("_bva"),
        _lookup(items.get_column("reg_void"), reg).alias("_rva"),
    ).with_columns(pl.coalesce("_ba", "_ra", "_bva", "_rva").fill_null(0).alias("_amount"))
    grouped = joined.group_by("category").agg(pl.len().alias("n"), pl.col("_amount").sum())
    out = {c: (0, 0) for c in Category}
    for category, n, total in grouped.iter_rows():
        out[Category(category)] = (int(n), int(total))
    return out


def _lookup(index: pl.Series, side: pl.DataFrame) -> pl.Series:
    amounts = side.get_column("amount")
    # idx is 0..n-1 on every frame, so gathering by position is the lookup.
    safe = index.fill_null(0)
    if len(amounts) == 0:
        return pl.Series([None] * len(index), dtype=pl.Int64)
    got = amounts.gather(safe.clip(0, len(amounts) - 1))
    return pl.select(pl.when(index.is_null()).then(None).otherwise(got)).to_series()


def load_rows(
    result: FastResult,
    reg: pl.DataFrame,
    bank: pl.DataFrame,
    entries: list[Entry | None] | None,
    category: Category | None,
    register_source: str,
    bank_source: str,
) -> tuple[Side, Side, Outcome]:
    """The rows of one category (None: all) as Python sides and outcome.

    Only the side rows those report rows name are converted: listing a few hundred
    discrepancies must not build Python objects for a million matched payments.
    """
    items = result.items
    if category is not None:
        items = items.filter(pl.col("category") == category.value)
        reg_idx = _named(items, "reg", "reg_void")
        bank_idx = _named(items, "bank", "bank_void")
        reg, bank = reg[reg_idx], bank[bank_idx]
        items = items.with_columns(
            _renumber("reg", reg_idx), _renumber("reg_void", reg_idx),
            _renumber("bank", bank_idx), _renumber("bank_void", bank_idx),
        )  # fmt: skip
        if entries is not None:
            entries = [entries[i] for i in reg_idx.to_list()]
        old_reg = {old: new for new, old in enumerate(reg_idx.to_list())}
        old_bank = {old: new for new, old in enumerate(bank_idx.to_list())}
        resolved = [
            (old_reg[r], old_bank[b]) for r, b in result.resolved
            if r in old_reg and b in old_bank
        ]  # fmt: skip
        result = FastResult(items, resolved)
    return (
        frame_to_side(reg, register_source, entries),
        frame_to_side(bank, bank_source, None),
        to_outcome(result),
    )


def _named(items: pl.DataFrame, *columns: str) -> pl.Series:
    """The side rows that ``columns`` of the report rows name, sorted."""
    named = pl.concat([items.get_column(c).drop_nulls() for c in columns])
    return named.unique().sort()


def _renumber(column: str, kept: pl.Series) -> pl.Expr:
    new = pl.int_range(len(kept), eager=True, dtype=pl.Int64)
    return pl.col(column).replace_strict(kept, new, default=None).alias(column)


def to_outcome(result: FastResult) -> Outcome:
    """The frame of report rows as ``matcher.Outcome`` columns."""
    items = result.items
    out = Outcome()
    out.category = [Category(c) for c in items.get_column("category").to_list()]
    out.key = [MatchKey(k) if k else None for k in items.get_column("key").to_list()]
    for name in ("reg", "bank", "reg_void", "bank_void"):
        setattr(out, name, items.get_column(name).fill_null(-1).to_list())
    out.resolved = list(result.resolved)
    return out


def pending_entries(entries: list[Entry | None]) -> Callable[[int], bool]:
    """``pending(i)`` for register rows backed by journal entries."""

    def pending(i: int) -> bool:
        e = entries[i]
        return e is not None and e.state in UNSETTLED

    return pending


def enrich_frame(
    invoices: pl.DataFrame, journal: pl.DataFrame, journal_entries: list[Entry | None]
) -> tuple[pl.DataFrame, list[Entry | None]]:
    """``sources.enrich_with_journal`` on frames; also returns each row's entry."""
    sale = (pl.col("kind") == Kind.SALE.value) & (pl.col("invoice") != "")
    inv = invoices.filter(sale)
    jou = journal.filter(sale).with_columns((pl.col("state") != APPROVED).alias("_doubt"))
    found: list[pl.DataFrame] = []
    for keys in LEND_KEYS:
        pairs = _rank_join(inv, [], jou, ["_doubt", "row"], keys)
        if pairs.height:
            found.append(pairs)
            inv = _without(inv, pairs.get_column("l"))
            jou = _without(jou, pairs.get_column("r"))
    entries: list[Entry | None] = [None] * invoices.height
    if not found:
        return invoices, entries
    pairs = pl.concat(found)
    lent = (*LENT_FIELDS, "time")
    borrowed = pairs.join(
        journal.select(pl.col("idx").alias("r"), *(pl.col(f).alias(f"_j_{f}") for f in lent)),
        on="r",
    ).rename({"l": "idx"})
    merged = invoices.join(borrowed, on="idx", how="left", maintain_order="left")
    merged = merged.with_columns(
        *(pl.when((pl.col(f) == "") & pl.col(f"_j_{f}").is_not_null())
          .then(pl.col(f"_j_{f}")).otherwise(pl.col(f)).alias(f)
          for f in lent if f != "time"),
        pl.col("time").fill_null(pl.col("_j_time")),
    )  # fmt: skip
    for i, j in pairs.select("l", "r").iter_rows():
        entries[i] = journal_entries[j]
    return merged.select(list(_SCHEMA)), entries


def in_period(
    frame: pl.DataFrame,
    entries: list[Entry | None] | None,
    since: datetime | None,
    until: datetime | None,
) -> tuple[pl.DataFrame, list[Entry | None] | None, int]:
    """Rows dated within [since, until] (undated rows stay), renumbered; and how many
    were left out."""
    if since is None and until is None:
        return frame, entries, 0
    t = pl.col("time")
    inside = pl.lit(True)
    if since is not None:
        inside = inside & (t >= since)
    if until is not None:
        inside = inside & (t <= until)
    kept = frame.filter(t.is_null() | inside)
    if kept.height == frame.height:
        return frame, entries, 0
    old = kept.get_column("idx")
    renumber = pl.DataFrame({"link": old, "_new": pl.int_range(len(old), eager=True)})
    kept = (
        kept.join(renumber, on="link", how="left", maintain_order="left")
        .with_columns(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("idx"),
            pl.col("_new").fill_null(-1).cast(pl.Int64).alias("link"),
        )
        .select(list(_SCHEMA))
    )
    kept_entries = None if entries is None else [entries[i] for i in old.to_list()]
    return kept, kept_entries, frame.height - kept.height
