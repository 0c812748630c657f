"""The polars engine gives exactly the standard-library engine's answers.

Generated data with few distinct keys, so that ranks, duplicates, voids, windows and
in-doubt rows all collide; and generated cells in every accepted format (and some
garbage), so the vectorised short cuts are checked against ``values``.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ecrlink import InputFileError
from ecrlink.journal.records import Entry, State
from ecrlink.reconcile import Category, Report, reconcile
from ecrlink.reconcile.sources import read_side

from .conftest import BANK_HEADER, DAY, entry, write_csv

_SETTINGS = settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])

_KIND = st.sampled_from(["SALE"] * 6 + ["VOID"] * 2 + ["REFUND"])
_MINUTES = st.sampled_from([0, 1, 30, 2000])

_bank_rows = st.lists(
    st.fixed_dictionaries({
        "invoice": st.sampled_from(["", "A", "B", "c"]),
        "last4": st.sampled_from(["", "1111", "2222"]),
        "approval": st.sampled_from(["", "x1", "X2"]),
        "rrn": st.sampled_from(["", "1", "000000000002"]),
        "amount": st.sampled_from([100, 200]),
        "kind": _KIND,
        "minutes": _MINUTES,
    }),
    max_size=12,
)
_journal = st.lists(
    st.fixed_dictionaries({
        "command": st.sampled_from(["sale"] * 5 + ["void"]),
        "state": st.sampled_from([State.APPROVED] * 3 + [State.IN_DOUBT] * 2 + [State.DECLINED]),
        "invoice": st.sampled_from(["", "A", "B"]),
        "last4": st.sampled_from(["", "1111", "2222"]),
        "approval": st.sampled_from(["", "X1", "X2"]),
        "rrn": st.sampled_from(["", "000000000001"]),
        "amount": st.sampled_from([100, 200]),
        "receipt": st.sampled_from(["1", "2", "3"]),
        "minutes": _MINUTES,
    }),
    max_size=10,
)


def _bank_file(path: Path, rows: list[dict[str, Any]]) -> Path:
    lines = [
        [(DAY + timedelta(minutes=r["minutes"])).strftime("%d/%m/%Y %H:%M:%S"), "31002095",
         "000000100091555", f"970436******{r['last4']}" if r["last4"] else "", r["amount"],
         r["approval"], r["rrn"], r["invoice"], "", "000003", f"{n:06d}", r["kind"]]
        for n, r in enumerate(rows)
    ]  # fmt: skip
    return write_csv(path, BANK_HEADER, lines)


def _entries(rows: list[dict[str, Any]]) -> list[Entry]:
    out = []
    for n, r in enumerate(rows):
        void = r["command"] == "void"
        out.append(entry(
            None if void else r["amount"],
            command=r["command"], state=r["state"], invoice="" if void else r["invoice"],
            card=f"9704 XXXX XXXX {r['last4']}" if r["last4"] else None,
            approval=r["approval"] or None, ref_no=r["rrn"] or None,
            receipt=str(10 + n) if void else r["receipt"],
            void_of=r["receipt"] if void else None,
            at=DAY + timedelta(minutes=r["minutes"]), id=n + 1,
        ))  # fmt: skip
    return out


def _invoice_file(path: Path, rows: list[dict[str, Any]]) -> Path:
    header = ["Mã hóa đơn", "Ngày", "Số tiền", "Số thẻ", "Mã chuẩn chi", "RRN", "Loại"]
    kinds = {"sale": "Bán", "void": "Hủy"}
    lines = [
        [r["invoice"], (DAY + timedelta(minutes=r["minutes"])).isoformat(),
         f"{r['amount']:,}".replace(",", "."), f"XXXX{r['last4']}" if r["last4"] else "",
         r["approval"], r["rrn"], kinds[r["command"]]]
        for r in rows if r["state"] is State.APPROVED
    ]  # fmt: skip
    return write_csv(path, header, lines, title=[["Hóa đơn"], []])


def _shape(report: Report) -> tuple[Any, ...]:
    def row_of(record: Any) -> int | None:
        return None if record is None else record.row

    def shape(r: Any) -> tuple[Any, ...]:
        return (r.category.value, r.key.value if r.key else "", row_of(r.register) or 0,
                row_of(r.bank) or 0, row_of(r.register_void) or 0, row_of(r.bank_void) or 0,
                r.in_doubt, r.resolved, r.amount, r.difference)

    # Category by category (the polars engine then loads only what each names), and
    # all at once: the same rows in the same order.
    by_category = [shape(r) for c in Category for r in report.rows(c)]
    assert by_category == [shape(r) for r in report.rows()]
    rows = sorted(by_category)
    summary = {c.value: (t.count, t.amount) for c, t in report.summary.items()}
    return summary, rows, sorted(e.id for e in report.resolved)


def _both(**kwargs: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    calls: dict[str, list[int]] = {"python": [], "polars": []}
    shapes = []
    for engine in ("python", "polars"):
        report = reconcile(engine=engine, resolve=lambda e, s, n, k=engine: calls[k].append(e.id),
                           **kwargs)  # fmt: skip
        shapes.append(_shape(report))
    assert calls["python"] == sorted(calls["polars"]) or sorted(calls["python"]) == sorted(
        calls["polars"]
    )
    return shapes[0], shapes[1]


_ROW = {"invoice": "A", "last4": "", "approval": "", "rrn": "", "amount": 100, "kind": "SALE"}
_SALE = {"command": "sale", "invoice": "A", "last4": "", "approval": "", "rrn": "",
         "amount": 100, "receipt": "1"}


@settings(_SETTINGS, max_examples=120)
@given(_bank_rows, _journal, st.sampled_from([timedelta(minutes=10), timedelta(hours=24)]))
@example(  # an in-doubt attempt, then an approved retry; the bank shows one charge
    [{**_ROW, "minutes": 0}],
    [{**_SALE, "state": State.IN_DOUBT, "minutes": 0},
     {**_SALE, "state": State.APPROVED, "minutes": 30}],
    timedelta(hours=24),
)
def test_same_answer_against_the_journal(
    bank: list[dict[str, Any]], journal: list[dict[str, Any]], window: timedelta
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        statement = _bank_file(Path(tmp) / "b.csv", bank)
        python, polars = _both(bank=statement, entries=_entries(journal), window=window)
        assert python == polars


@_SETTINGS
@given(_bank_rows, _journal, st.booleans())
def test_same_answer_against_an_invoice_list(
    bank: list[dict[str, Any]], register: list[dict[str, Any]], with_journal: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        statement = _bank_file(Path(tmp) / "b.csv", bank)
        invoices = _invoice_file(Path(tmp) / "i.csv", register)
        entries = _entries(register) if with_journal else None
        python, polars = _both(bank=statement, invoices=invoices, entries=entries,
                               since=DAY + timedelta(minutes=1))
        assert python == polars


_AMOUNT_CELLS = st.one_of(
    st.integers(0, 10**9).map(str),
    st.integers(0, 10**9).map(lambda n: f"{n:,}".replace(",", ".")),
    st.integers(0, 10**9).map(lambda n: f"{n:,}"),
    st.integers(0, 10**9).map(lambda n: f"{n}.00"),
    st.integers(0, 10**9).map(lambda n: f" {n:,} đ".replace(",", ".")),
    st.integers(1, 10**6).map(lambda n: f"-{n}"),
    st.sampled_from(["1.000", "1234.000", "12.5", "", "abc", "1.2.3", "99999999999999999999"]),
)
_DATE_CELLS = st.one_of(
    st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1)).map(
        lambda d: d.strftime("%d/%m/%Y %H:%M:%S")),
    st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%S")),
    st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1)).map(
        lambda d: f"{d.day}/{d.month}/{d.year} {d.hour}:{d.minute:02d}"),
    st.sampled_from(["31/02/2026 10:00:00", "", "0000-01-01", "01/01/1800 00:00:00",
                     "2026-03-02 10:00:00+07:00", "1/3/2026"]),
)
_CARD_CELLS = st.sampled_from(
    ["", "970436******1234", "9704 XXXX XXXX 6163", "6163XXXX", "12", "9704001234566163",
     " 970436******1234 ", "XXXX 1 2 3 4"]
)


@_SETTINGS
@given(st.lists(st.tuples(_DATE_CELLS, _AMOUNT_CELLS, _CARD_CELLS,
                          st.sampled_from(["", "SALE", "void", "Hủy", "x"])), max_size=8))
def test_same_reading_or_the_same_error(rows: list[tuple[str, str, str, str]]) -> None:
    from ecrlink.reconcile import _fast

    with tempfile.TemporaryDirectory() as tmp:
        path = write_csv(Path(tmp) / "s.csv", ["Ngày", "Số tiền", "Số thẻ", "Loại"],
                         [list(r) for r in rows])
        try:
            side = read_side(path, "bank")
        except InputFileError as exc:
            try:
                _fast.read_frame(str(path), "bank")
            except InputFileError as again:
                assert (again.row, again.column, str(again)) == (exc.row, exc.column, str(exc))
            else:
                raise AssertionError(f"polars read what the standard reader refused: {exc}")
            return
        frame, _dropped = _fast.read_frame(str(path), "bank")
        fast = _fast.frame_to_side(frame, str(path), None)
        for name in ("row", "kind", "amount", "time", "card", "last4", "invoice"):
            assert getattr(fast, name) == getattr(side, name), name
