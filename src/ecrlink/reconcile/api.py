"""``reconcile()``: read both sides, match them, resolve what the statement proves."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import polars as pl

from .._exceptions import InputFileError, ReconcileError
from ..journal.records import Entry, State
from .columns import ColumnMapping, Role, load_mapping
from .engine import DEFAULT_WINDOW, match, rank_join
from .frames import read_frame
from .model import APPROVED, side_schema
from .report import Report
from .sources import LEND_KEYS, LENT_FIELDS, JournalEntries, file_kind, journal_side
from .values import Kind

__all__ = ["Resolver", "Sides", "read_sides", "reconcile"]

Resolver = Callable[[Entry, State, str], None]
"""Called once per in-doubt journal entry the statement proves: (entry, state, note)."""


def reconcile(
    bank: str | os.PathLike[str],
    *,
    invoices: str | os.PathLike[str] | None = None,
    entries: Iterable[Entry] | JournalEntries | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    window: timedelta = DEFAULT_WINDOW,
    resolve: Resolver | None = None,
    mapping: str | os.PathLike[str] | Mapping[Role, ColumnMapping] | None = None,
) -> Report:
    """Match the register's payments against a bank statement.

    ``bank`` is the statement (CSV or XLSX). The register side is the invoice list
    ``invoices`` (CSV or XLSX) if given, else the journal ``entries`` (``Entry``
    objects, or ``JournalEntries``: the entries as columns, as a journal or head
    office's server reads them without building an object per entry); with both,
    entries lend their card data to invoice rows of the same invoice. Rows dated
    outside ``[since, until]`` (naive Vietnam-local times, both inclusive) are left
    out on both sides. ``window`` bounds how far apart both sides may date a
    card + approval code match. ``mapping`` (a mapping file, or its parsed form)
    names columns the synonyms miss.

    ``resolve(entry, State.APPROVED, note)`` is called for every in-doubt or
    pending journal sale that a bank row matches exactly (invoice + amount, or
    card + approval + amount, or RRN + amount), after all matching is done. A
    statement never proves a decline: unmatched in-doubt rows stay in doubt and
    are reported as ``ecr_only`` with ``in_doubt`` set.

    Raises ``InputFileError`` (file, row, column) for a file that cannot be read
    as a whole; no partial report is ever returned.

    Head office's entries (``JournalEntries.by_site``: several stores' journals at
    once, each entry with its ``site``) give a report with a ``site`` on journal rows
    and per-site and per-MID totals (``Report.totals``). The report's JSON (the same as
    ``ecrlink reconcile --json``) is ``writers.json_chunks(report)``.
    """
    if invoices is None and entries is None:
        raise ReconcileError("nothing to reconcile against: give an invoice list or the journal")
    if since is not None and until is not None and since > until:
        raise ReconcileError(f"the period is empty: {since} is after {until}")
    if window < timedelta(0):
        raise ReconcileError("the window cannot be negative")
    sides = read_sides(bank, invoices=invoices, entries=entries, since=since, until=until,
                       mapping=mapping)
    reg, bank_frame, bank_path = sides.reg, sides.bank, os.fspath(bank)
    journal = sides.entries
    by_site = journal is not None and journal.by_site
    site_rows = _sites(reg, journal) if journal is not None and by_site else None
    if site_rows is None:
        items = match(reg, bank_frame, window).items
    else:
        items = match(*_scoped_invoices(reg, bank_frame, site_rows), window).items
    proofs = _proofs(items, reg, bank_frame, journal, bank_path)
    report = Report(
        reg=reg, bank=bank_frame, items=items,
        bank_source=bank_path, register_source=sides.register_source,
        since=since, until=until, window=window, resolved=[e for e, _, _ in proofs],
        dropped=sides.dropped,
        sites=site_rows,
        resolved_sites=[site for _, _, site in proofs] if by_site else (),
    )  # fmt: skip
    if resolve is not None:
        for entry, note, _ in proofs:
            resolve(entry, State.APPROVED, note)
    return report


class Sides(NamedTuple):
    """Both sides as ``match`` takes them."""

    reg: pl.DataFrame
    bank: pl.DataFrame
    entries: JournalEntries | None
    """The journal entries that register rows' ``entry`` column points into."""
    register_source: str
    dropped: dict[str, int]


def read_sides(
    bank: str | os.PathLike[str],
    *,
    invoices: str | os.PathLike[str] | None = None,
    entries: Iterable[Entry] | JournalEntries | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    mapping: str | os.PathLike[str] | Mapping[Role, ColumnMapping] | None = None,
) -> Sides:
    """Read both sides (``reconcile``'s arguments), lend journal data, cut the period.

    Errors come in one order however the files are read: the journal's, then the
    statement's, then the invoice list's (each only if those before it read well).
    """
    mappings = _mappings(mapping)
    if entries is not None and not isinstance(entries, JournalEntries):
        entries = JournalEntries.of(entries)
    bank_path = os.fspath(bank)
    register_source = os.fspath(invoices) if invoices is not None else "journal"
    # Two files of which one is XLSX: read at the same time (calamine is one thread and
    # lets go of the GIL). Two CSV files one after the other: polars already uses both
    # cores for one file.
    together = invoices is not None and _any_xlsx(bank_path, register_source)
    read_reg: tuple[pl.DataFrame, int] | None = None
    if entries is None and not together:
        journal = None
        bank_frame, bank_dropped = read_frame(bank_path, "bank", mappings.get("bank"))
    else:
        # The statement in another thread; here the journal (a file, or head office's
        # server: mostly waiting and Python) and, with an XLSX file, the invoice list.
        # A journal's error wins (the pool waits for the statement first); the invoice
        # list's is raised only once the statement is known to read well.
        reg_error: Exception | None = None
        with ThreadPoolExecutor(1, thread_name_prefix="ecrlink-bank") as pool:
            reading = pool.submit(read_frame, bank_path, "bank", mappings.get("bank"))
            journal = journal_side(entries.frame) if entries is not None else None
            if together:
                try:
                    read_reg = read_frame(register_source, "invoices", mappings.get("invoices"))
                except Exception as exc:  # raised below, after the statement's
                    reg_error = exc
            bank_frame, bank_dropped = reading.result()
        if reg_error is not None:
            raise reg_error
    if invoices is not None:
        if read_reg is None:
            read_reg = read_frame(register_source, "invoices", mappings.get("invoices"))
        reg, reg_dropped = read_reg
        if journal is not None:
            reg = _enrich(reg, journal)
    else:
        assert journal is not None
        reg, reg_dropped = journal, 0
    bank_frame, bank_out = _in_period(bank_frame, since, until)
    reg, reg_out = _in_period(reg, since, until)
    return Sides(
        reg, bank_frame, entries, register_source,
        {"bank": bank_dropped + bank_out, "register": reg_dropped + reg_out},
    )


def _any_xlsx(*paths: str) -> bool:
    """Whether any of the files is XLSX; False if one cannot be told, so that the files
    are read one after the other and the first one's error is raised as always."""
    try:
        return any(file_kind(p) == "xlsx" for p in paths)
    except InputFileError:
        return False


def _sites(reg: pl.DataFrame, entries: JournalEntries) -> pl.Series:
    """Each register row's store, by position (null for a row without an entry)."""
    return entries.frame.get_column("site").gather(reg.get_column("entry")).alias("site")


def _scoped_invoices(
    reg: pl.DataFrame, bank: pl.DataFrame, sites: pl.Series
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Both sides with each invoice code prefixed by its store, for matching only.

    Stores number their invoices on their own: two stores' ``HD000001`` are two
    invoices, not one charged twice. A bank row belongs to the store whose journal
    names its TID (a terminal serves one store); a bank row of a TID no journal row
    names, or of a TID two stores name, keeps its bare code (it can still match by
    card + approval code, or RRN)."""
    scoped = reg.with_columns(sites.alias("_site"))
    tid_site = (
        scoped.filter((pl.col("tid") != "") & pl.col("_site").is_not_null())
        .group_by("tid").agg(pl.col("_site").unique())
        .filter(pl.col("_site").list.len() == 1)
        .select("tid", pl.col("_site").list.first())
    )
    bank_scoped = bank.join(tid_site, on="tid", how="left", maintain_order="left")

    def prefixed(frame: pl.DataFrame) -> pl.DataFrame:
        inv, site = pl.col("invoice"), pl.col("_site")
        return frame.with_columns(
            pl.when((inv != "") & site.is_not_null())
            .then(pl.concat_str([site, pl.lit("\x1f"), inv])).otherwise(inv).alias("invoice")
        ).drop("_site")

    return prefixed(scoped), prefixed(bank_scoped)


def _mappings(
    mapping: str | os.PathLike[str] | Mapping[Role, ColumnMapping] | None,
) -> Mapping[Role, ColumnMapping]:
    if mapping is None:
        return {}
    if isinstance(mapping, Mapping):
        return mapping
    return load_mapping(mapping)


def _proofs(
    items: pl.DataFrame,
    reg: pl.DataFrame,
    bank: pl.DataFrame,
    entries: JournalEntries | None,
    bank_path: str,
) -> list[tuple[Entry, str, str | None]]:
    """The in-doubt entries the statement proves approved, each with its note and
    store: only these entries are fetched as objects."""
    proved = items.filter(pl.col("proves")).select("reg", "bank")
    if proved.height == 0 or entries is None:
        return []
    rows = (
        proved.join(reg.select(pl.col("idx").alias("reg"), "entry"), on="reg")
        .join(bank.select(pl.col("idx").alias("bank"), "row", "approval", "ref_no"), on="bank")
        .sort("entry")
    )
    rows = rows.filter(pl.col("entry").is_not_null())
    at = rows.get_column("entry").to_list()
    sites = entries.frame.get_column("site").gather(at).to_list()
    notes = [_note(bank_path, *r) for r in rows.select("row", "approval", "ref_no").iter_rows()]
    return list(zip(entries.get(at), notes, sites, strict=True))


def _note(path: str, row: int, approval: str, ref_no: str) -> str:
    parts = [f"bank statement {Path(path).name} row {row}"]
    if approval:
        parts.append(f"approval {approval}")
    if ref_no:
        parts.append(f"RRN {ref_no}")
    return "proved approved by " + ", ".join(parts)


def _enrich(invoices: pl.DataFrame, journal: pl.DataFrame) -> pl.DataFrame:
    """Give invoice-list rows the card data the journal knows for the same invoice.

    Invoice rows (sales, in file order) and journal sales (approved before in
    doubt, then by entry id) are paired on invoice + amount, then on invoice alone,
    each used once. The invoice row keeps its own values where it has them, and
    takes the entry, so an exact bank match can resolve an in-doubt payment.
    """
    sale = (pl.col("kind") == Kind.SALE.value) & (pl.col("invoice") != "")
    inv = invoices.filter(sale)
    jou = journal.filter(sale).with_columns((pl.col("state") != APPROVED).alias("_doubt"))
    found: list[pl.DataFrame] = []
    for keys in LEND_KEYS:
        pairs = rank_join(inv, [], jou, ["_doubt", "row"], keys)
        if pairs.height:
            found.append(pairs.select("l", "r"))
            inv = inv.filter(~pl.col("idx").is_in(pairs.get_column("l").implode()))
            jou = jou.filter(~pl.col("idx").is_in(pairs.get_column("r").implode()))
    if not found:
        return invoices
    lent = (*LENT_FIELDS, "time", "unsettled", "entry")
    borrowed = pl.concat(found).join(
        journal.select(pl.col("idx").alias("r"), *(pl.col(f).alias(f"_j_{f}") for f in lent)),
        on="r",
    ).rename({"l": "idx"})
    merged = invoices.join(borrowed, on="idx", how="left", maintain_order="left")
    return merged.with_columns(
        *(pl.when((pl.col(f) == "") & pl.col(f"_j_{f}").is_not_null())
          .then(pl.col(f"_j_{f}")).otherwise(pl.col(f)).alias(f)
          for f in LENT_FIELDS),
        pl.col("time").fill_null(pl.col("_j_time")),
        pl.col("_j_unsettled").fill_null(pl.col("unsettled")).alias("unsettled"),
        pl.col("_j_entry").fill_null(pl.col("entry")).alias("entry"),
    ).select(list(side_schema()))  # fmt: skip


def _in_period(
    frame: pl.DataFrame, since: datetime | None, until: datetime | None
) -> tuple[pl.DataFrame, int]:
    """Rows dated within [since, until] (undated rows stay), renumbered; and how many
    were left out."""
    if since is None and until is None:
        return frame, 0
    t = pl.col("time")
    inside = pl.lit(True)
    if since is not None:
        inside = inside & (t >= since)
    if until is not None:
        inside = inside & (t <= until)
    kept = frame.filter(t.is_null() | inside)
    if kept.height == frame.height:
        return frame, 0
    old = kept.get_column("idx")
    renumber = pl.DataFrame({"link": old, "_new": pl.int_range(len(old), eager=True)})
    kept = (
        kept.join(renumber, on="link", how="left", maintain_order="left")
        .with_columns(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("idx"),
            pl.col("_new").fill_null(-1).cast(pl.Int64).alias("link"),
        )
        .select(list(side_schema()))
    )
    return kept, frame.height - kept.height
