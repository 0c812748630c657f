"""The engine gives exactly the reference matcher's answers (``reference.py``).

Generated data with few distinct keys, so that ranks, duplicates, voids, windows and
in-doubt rows all collide; and generated cells in every accepted format (and some
garbage), so the vectorised reading short cuts are checked against ``values``.
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
from ecrlink.reconcile import DEFAULT_WINDOW, Category, reconcile
from ecrlink.reconcile.api import read_sides

from . import reference
from .conftest import BANK_HEADER, DAY, entry, side_of, write_csv

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


def _agree(window: timedelta = DEFAULT_WINDOW, **kwargs: Any) -> None:
    """``reconcile()`` gives, row for row, what the reference matcher gives on the
    same rows, and resolves exactly the entries it proves."""
    resolved: list[int] = []
    report = reconcile(window=window, resolve=lambda e, s, n: resolved.append(e.id), **kwargs)
    sides = read_sides(**kwargs)
    reg = sides.reg.to_dicts()
    bank = sides.bank.to_dicts()
    for row in reg + bank:
        row["kind"] = str(row["kind"])

    def number(side: list[dict[str, Any]], i: int) -> int:
        return side[i]["row"] if i >= 0 else 0

    expected = sorted(
        (category, key or "", number(reg, r), number(bank, b), number(reg, rv),
         number(bank, bv), proves)
        for category, key, r, b, rv, bv, proves in reference.match(reg, bank, window)
    )
    got = sorted(
        (row.category.value, row.key.value if row.key else "",
         row.register.row if row.register else 0, row.bank.row if row.bank else 0,
         row.register_void.row if row.register_void else 0,
         row.bank_void.row if row.bank_void else 0, row.resolved)
        for row in report.rows()
    )  # fmt: skip
    assert got == expected
    proved = sorted(sides.entries[r["entry"]].id for r in reg  # type: ignore[union-attr]
                    if any(p and n == r["row"] for _, _, n, _, _, _, p in expected))
    assert sorted(resolved) == proved == sorted(e.id for e in report.resolved)
    # The summary is the rows' (count, amount) per category; rows come most serious first.
    rows = list(report.rows())
    for category, totals in report.summary.items():
        mine = [r for r in rows if r.category is category]
        assert (totals.count, totals.amount) == (len(mine), sum(r.amount for r in mine))
    order = list(Category)
    assert [order.index(r.category) for r in rows] == sorted(order.index(r.category) for r in rows)


_ROW = {"invoice": "A", "last4": "", "approval": "", "rrn": "", "amount": 100, "kind": "SALE"}
_SALE = {"command": "sale", "invoice": "A", "last4": "", "approval": "", "rrn": "",
         "amount": 100, "receipt": "1"}


@settings(_SETTINGS, max_examples=150)
@given(_bank_rows, _journal, st.sampled_from([timedelta(minutes=10), timedelta(hours=24)]))
@example(  # an in-doubt attempt, then an approved retry; the bank shows one charge
    [{**_ROW, "minutes": 0}],
    [{**_SALE, "state": State.IN_DOUBT, "minutes": 0},
     {**_SALE, "state": State.APPROVED, "minutes": 30}],
    timedelta(hours=24),
)
def test_engine_agrees_with_the_reference_against_the_journal(
    bank: list[dict[str, Any]], journal: list[dict[str, Any]], window: timedelta
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        statement = _bank_file(Path(tmp) / "b.csv", bank)
        _agree(window, bank=statement, entries=_entries(journal))


@_SETTINGS
@given(_bank_rows, _journal, st.booleans())
def test_engine_agrees_with_the_reference_against_an_invoice_list(
    bank: list[dict[str, Any]], register: list[dict[str, Any]], with_journal: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        statement = _bank_file(Path(tmp) / "b.csv", bank)
        invoices = _invoice_file(Path(tmp) / "i.csv", register)
        entries = _entries(register) if with_journal else None
        _agree(bank=statement, invoices=invoices, entries=entries,
               since=DAY + timedelta(minutes=1))


def test_the_benchmark_data_with_every_planted_case(tmp_path: Path) -> None:
    """The bench's generator plants every category; engine and reference agree on it."""
    from .test_planted import _bench

    files = _bench().generate(tmp_path, 400, seed=3)
    _agree(bank=files["bank"], invoices=files["register"])


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
def test_vectorised_reading_agrees_with_the_row_reader(
    rows: list[tuple[str, str, str, str]],
) -> None:
    """The frame reader's short cuts read every cell as ``values`` does (or give the
    row reader's error)."""
    from ecrlink.reconcile.columns import find_header
    from ecrlink.reconcile.frames import read_frame
    from ecrlink.reconcile.sources import side_from_rows

    with tempfile.TemporaryDirectory() as tmp:
        header = ["Ngày", "Số tiền", "Số thẻ", "Loại"]
        path = write_csv(Path(tmp) / "s.csv", header, [list(r) for r in rows])
        cells: list[list[object]] = [header, *[list(r) for r in rows]]
        try:
            side = side_from_rows(str(path), "bank", cells, find_header(cells, str(path), "bank"))
        except InputFileError as exc:
            try:
                read_frame(str(path), "bank")
            except InputFileError as again:
                assert (again.row, again.column, str(again)) == (exc.row, exc.column, str(exc))
            else:
                raise AssertionError(f"the frame reader read what the row reader refused: {exc}")
            return
        frame, _dropped = read_frame(str(path), "bank")
        fast = side_of(frame)
        for name in ("row", "kind", "amount", "time", "card", "last4", "invoice"):
            assert getattr(fast, name) == getattr(side, name), name
