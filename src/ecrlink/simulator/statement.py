"""The acquirer's statement: what the bank says it settled, as CSV.

This is the file reconciliation reads against the journal. Format (fixed; the
reconciliation reader depends on it): UTF-8 with BOM, comma-separated, header
``STATEMENT_HEADER``; date ``dd/mm/yyyy HH:MM:SS`` in Vietnam time; amount plain
digits; card masked with the first 6 and last 4 digits (``970436******1234``);
Invoice = F3, Reference = F5; batch and receipt 6 digits; type ``SALE`` or ``VOID``.
A void is its own row with the voided sale's amount, approval code and invoice.
Only what the bank approved appears: declines, cancellations and requests never
answered never reach a statement.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from pathlib import Path

from ..protocol import VIETNAM_TIME
from .ledger import Identity, TransactionRecord
from .state import write_atomically

__all__ = ["STATEMENT_HEADER", "statement_rows", "write_statement"]

STATEMENT_HEADER = (
    "Transaction date", "TID", "MID", "Card number", "Amount", "Approval code", "RRN",
    "Invoice", "Reference", "Batch", "Receipt", "Type",
)

_TYPE = {"sale": "SALE", "void": "VOID"}
"""The commands the bank settles, and their ``Type`` column."""


def _row(record: TransactionRecord, identity: Identity, kind: str) -> tuple[str, ...]:
    assert record.card is not None
    return (
        record.time.astimezone(VIETNAM_TIME).strftime("%d/%m/%Y %H:%M:%S"),
        identity.tid,
        identity.mid,
        record.card.statement_card_no,
        str(record.amount),
        record.approval_code or "",
        record.ref_no or "",
        record.invoice,
        record.reference,
        f"{record.batch_no:06d}",
        f"{record.receipt_no or 0:06d}",
        kind,
    )


def statement_rows(
    records: Iterable[tuple[Identity, TransactionRecord]],
) -> list[tuple[str, ...]]:
    """The statement's rows (without header) for ``(terminal, record)`` pairs, in order."""
    return [
        _row(record, identity, _TYPE[record.command])
        for identity, record in records
        if record.command in _TYPE and record.approved  # a voided sale was approved too
    ]


def write_statement(
    path: str | os.PathLike[str],
    records: Iterable[tuple[Identity, TransactionRecord]],
) -> int:
    """Write the statement for ``records`` to ``path`` atomically; return the row count.

    Records are written in time order (then terminal, then processing order).
    """
    ordered = sorted(records, key=lambda item: (item[1].time, item[0].tid, item[1].seq))
    rows = statement_rows(ordered)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(STATEMENT_HEADER)
    writer.writerows(rows)
    write_atomically(Path(path), out.getvalue().encode("utf-8-sig"), mode=0o644)
    return len(rows)
