"""Helpers to write statements, invoice lists and journal entries for reconciliation."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ecrlink.journal.records import Entry, State
from ecrlink.simulator.statement import STATEMENT_HEADER

BANK_HEADER: tuple[str, ...] = tuple(STATEMENT_HEADER)
"""The simulator's statement header: the reader must take it with no mapping."""

INVOICE_HEADER = ("Mã hóa đơn", "Ngày", "Số tiền", "Số thẻ", "Mã chuẩn chi", "Loại")
DAY = datetime(2026, 3, 2, 9, 0, 0)


def bank_row(
    amount: int,
    *,
    at: datetime = DAY,
    invoice: str = "",
    last4: str = "6163",
    approval: str = "111112",
    rrn: str = "",
    kind: str = "SALE",
    receipt: int = 1,
    tid: str = "31002095",
) -> list[str]:
    """One statement row in the simulator's format."""
    return [
        at.strftime("%d/%m/%Y %H:%M:%S"), tid, "000000100091555",
        f"970436******{last4}" if last4 else "", str(amount), approval, rrn, invoice, "",
        "000003", f"{receipt:06d}", kind,
    ]  # fmt: skip


def write_csv(
    path: Path,
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    title: Sequence[Sequence[str]] = (),
    delimiter: str = ",",
    encoding: str = "utf-8-sig",
) -> Path:
    """A CSV file as a bank or a POS would export it."""
    with open(path, "w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator="\r\n")
        writer.writerows(title)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_bank(path: Path, rows: Sequence[Sequence[object]]) -> Path:
    """A statement exactly as the simulator writes it."""
    return write_csv(path, BANK_HEADER, rows)


def write_xlsx(
    path: Path,
    header: Sequence[object],
    rows: Sequence[Sequence[object]],
    *,
    title: Sequence[Sequence[object]] = (),
) -> Path:
    """An XLSX file (a merchant portal's export)."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for line in [*title, header, *rows]:
        sheet.append(list(line))
    book.save(path)
    return path


_IDS = iter(range(1, 1_000_000))


def entry(
    amount: int | None,
    *,
    command: str = "sale",
    state: State = State.APPROVED,
    invoice: str = "",
    card: str | None = "9704 XXXX XXXX 6163",
    approval: str | None = "111112",
    ref_no: str | None = None,
    receipt: str | None = "1",
    void_of: str | None = None,
    tid: str | None = "31002095",
    batch: str | None = "3",
    at: datetime = DAY,
    id: int | None = None,
) -> Entry:
    """A journal entry as the journal's reader gives it (times aware, in UTC)."""
    moment = (at - timedelta(hours=7)).replace(tzinfo=UTC)
    in_doubt = state in (State.IN_DOUBT, State.PENDING)
    return Entry(
        id=id if id is not None else next(_IDS),
        terminal="http://pos",
        command=command,
        state=state,
        request_id="r",
        client_id="c",
        amount=amount,
        fields=("", "", invoice, "", ""),
        created_at=moment,
        updated_at=moment,
        receipt_no=None if in_doubt else receipt,
        void_of=void_of,
        approval_code=None if in_doubt else approval,
        ref_no=None if in_doubt else ref_no,
        card_no=None if in_doubt else card,
        tid=None if in_doubt else tid,
        batch_no=None if in_doubt else batch,
        trans_time=None if in_doubt else moment,
    )


def categories(report: Any) -> dict[str, int]:
    """Non-zero counts per category."""
    return {c.value: t.count for c, t in report.summary.items() if t.count}


def side_of(frame: Any) -> SimpleNamespace:
    """A side's frame as lists of Python values, one attribute per column."""
    from ecrlink.reconcile.values import Kind

    side = SimpleNamespace(**{name: frame.get_column(name).to_list() for name in frame.columns})
    side.kind = [Kind(k) for k in side.kind]
    return side
