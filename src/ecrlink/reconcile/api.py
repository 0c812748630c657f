"""``reconcile()``: read both sides, match them, resolve what the statement proves."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, NamedTuple

from .._exceptions import ReconcileError
from ..journal.records import Entry, State
from .columns import ColumnMapping, Role, load_mapping
from .matcher import DEFAULT_WINDOW, Outcome, match
from .model import Category, Side
from .report import Report, Totals, summarise
from .sources import enrich_with_journal, read_side, rows_from_entries

__all__ = ["FAST_THRESHOLD_BYTES", "Engine", "Resolver", "reconcile"]

Engine = Literal["auto", "python", "polars"]
Resolver = Callable[[Entry, State, str], None]
"""Called once per in-doubt journal entry the statement proves: (entry, state, note)."""

FAST_THRESHOLD_BYTES = 4_000_000
"""Input size from which ``engine="auto"`` takes polars (if installed): below it,
importing polars costs more than it saves."""


def reconcile(
    bank: str | os.PathLike[str],
    *,
    invoices: str | os.PathLike[str] | None = None,
    entries: Iterable[Entry] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    window: timedelta = DEFAULT_WINDOW,
    resolve: Resolver | None = None,
    mapping: str | os.PathLike[str] | Mapping[Role, ColumnMapping] | None = None,
    engine: Engine = "auto",
) -> Report:
    """Match the register's payments against a bank statement.

    ``bank`` is the statement (CSV or XLSX). The register side is the invoice list
    ``invoices`` (CSV or XLSX) if given, else the journal ``entries``; with both,
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
    """
    if invoices is None and entries is None:
        raise ReconcileError("nothing to reconcile against: give an invoice list or the journal")
    if since is not None and until is not None and since > until:
        raise ReconcileError(f"the period is empty: {since} is after {until}")
    if window < timedelta(0):
        raise ReconcileError("the window cannot be negative")
    job = _Job(
        bank=os.fspath(bank),
        invoices=os.fspath(invoices) if invoices is not None else None,
        journal=rows_from_entries(entries) if entries is not None else None,
        since=since, until=until, window=window, mappings=_mappings(mapping),
    )  # fmt: skip
    polars = _use_polars(engine, job.bank, job.invoices)
    done = (_run_polars if polars else _run_python)(job)
    report = Report(
        summary=done.summary, loader=done.loader,
        bank_source=job.bank, register_source=job.invoices or "journal",
        since=since, until=until, window=window, resolved=[e for e, _ in done.proofs],
        dropped=done.dropped, engine="polars" if polars else "python",
    )  # fmt: skip
    if resolve is not None:
        for entry, note in done.proofs:
            resolve(entry, State.APPROVED, note)
    return report


@dataclass(frozen=True, slots=True)
class _Job:
    """What both engines are asked: the files, the journal's side, the period."""

    bank: str
    invoices: str | None
    journal: Side | None
    since: datetime | None
    until: datetime | None
    window: timedelta
    mappings: Mapping[Role, ColumnMapping]


class _Done(NamedTuple):
    """What an engine answers; ``reconcile`` makes the report of it."""

    summary: Mapping[Category, Totals]
    loader: Callable[[Category | None], tuple[Side, Side, Outcome]]
    proofs: list[tuple[Entry, str]]
    """In-doubt entries the statement proves approved, each with its note."""
    dropped: dict[str, int]


def _note(path: str, row: int, approval: str, ref_no: str) -> str:
    parts = [f"bank statement {Path(path).name} row {row}"]
    if approval:
        parts.append(f"approval {approval}")
    if ref_no:
        parts.append(f"RRN {ref_no}")
    return "proved approved by " + ", ".join(parts)


def _mappings(
    mapping: str | os.PathLike[str] | Mapping[Role, ColumnMapping] | None,
) -> Mapping[Role, ColumnMapping]:
    if mapping is None:
        return {}
    if isinstance(mapping, Mapping):
        return mapping
    return load_mapping(mapping)


def _use_polars(engine: Engine, *paths: str | None) -> bool:
    if engine == "python":
        return False
    try:
        import polars  # noqa: F401
    except ImportError:
        if engine == "polars":
            raise ReconcileError(
                "the polars engine needs polars: pip install 'ecrlink[reconcile]'"
            ) from None
        return False
    if engine == "polars":
        return True
    size = 0
    for p in paths:
        if p is not None:
            with contextlib.suppress(OSError):  # the reader will say what is wrong
                size += os.path.getsize(p)
    return size >= FAST_THRESHOLD_BYTES


def _in_period(side: Side, since: datetime | None, until: datetime | None) -> Side:
    if since is None and until is None:
        return side
    keep = [
        i for i, t in enumerate(side.time)
        if t is None or ((since is None or t >= since) and (until is None or t <= until))
    ]  # fmt: skip
    return side if len(keep) == len(side) else side.take(keep)


def _run_python(job: _Job) -> _Done:
    bank = read_side(job.bank, "bank", job.mappings.get("bank"))
    if job.invoices is not None:
        reg = read_side(job.invoices, "invoices", job.mappings.get("invoices"))
        if job.journal is not None:
            enrich_with_journal(reg, job.journal)
    else:
        assert job.journal is not None
        reg = job.journal
    bank, reg = _in_period(bank, job.since, job.until), _in_period(reg, job.since, job.until)
    out = match(reg, bank, job.window)
    proofs = [
        (e, _note(job.bank, bank.row[b], bank.approval[b], bank.ref_no[b]))
        for r, b in out.resolved
        if (e := reg.entry[r]) is not None
    ]
    return _Done(
        summary=summarise(reg, bank, out),
        loader=lambda _: (reg, bank, out),
        proofs=proofs,
        dropped={"bank": bank.dropped, "register": reg.dropped},
    )


def _run_polars(job: _Job) -> _Done:
    from . import _fast

    entries: list[Entry | None] | None
    journal = job.journal
    # One file after the other: on two cores polars already uses both for one file,
    # and reading both at once measured slower.
    bank, bank_dropped = _fast.read_frame(job.bank, "bank", job.mappings.get("bank"))
    if job.invoices is not None:
        reg, reg_dropped = _fast.read_frame(job.invoices, "invoices", job.mappings.get("invoices"))
        entries = None
        if journal is not None:
            reg, entries = _fast.enrich_frame(reg, _fast.side_to_frame(journal), journal.entry)
    else:
        assert journal is not None
        reg, reg_dropped, entries = _fast.side_to_frame(journal), 0, journal.entry
    bank, _, bank_out = _fast.in_period(bank, None, job.since, job.until)
    reg, entries, reg_out = _fast.in_period(reg, entries, job.since, job.until)
    pending = _fast.pending_entries(entries) if entries is not None else None
    result = _fast.match_frames(reg, bank, job.window, pending)
    summary = {
        c: Totals(n, total) for c, (n, total) in _fast.summary_of(result.items, reg, bank).items()
    }
    proofs: list[tuple[Entry, str]] = []
    if result.resolved and entries is not None:
        rows = bank.select("row", "approval", "ref_no")
        for r, b in result.resolved:
            entry = entries[r]
            if entry is not None:
                row, approval, ref_no = rows.row(b)
                proofs.append((entry, _note(job.bank, row, approval, ref_no)))
    register_source = job.invoices or "journal"

    def load(category: Category | None) -> tuple[Side, Side, Outcome]:
        return _fast.load_rows(result, reg, bank, entries, category, register_source, job.bank)

    return _Done(
        summary=summary,
        loader=load,
        proofs=proofs,
        dropped={"bank": bank_dropped + bank_out, "register": reg_dropped + reg_out},
    )
