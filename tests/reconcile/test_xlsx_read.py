"""Both files read at the same time when one is XLSX: same errors, same report.

``read_sides`` reads the statement in a worker thread and the invoice list in the
calling thread when either file is XLSX (two CSV files are read one after the
other). Which error a cashier sees must not depend on that: the journal's, then
the statement's, then the invoice list's, as when read one after the other.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecrlink import InputFileError
from ecrlink.journal.records import State
from ecrlink.reconcile import json_chunks, reconcile
from ecrlink.reconcile.api import read_sides
from ecrlink.reconcile.frames import read_frame

from .conftest import (
    BANK_HEADER,
    DAY,
    INVOICE_HEADER,
    bank_row,
    entry,
    write_csv,
    write_xlsx,
)

_TITLE = [["BÁO CÁO HÓA ĐƠN"], ["Cửa hàng: ABC"], []]


def _slow_bad_bank(path: Path, rows: int = 8000) -> Path:
    """A statement whose error is found only at its last row, after the whole sheet
    is checked and read (written with xlsxwriter: openpyxl is slow at this size)."""
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, BANK_HEADER)
    for n in range(1, rows):
        sheet.write_row(n, 0, bank_row(1000 + n, invoice=f"HD{n:06d}", receipt=n))
    sheet.write_row(rows, 0, [*bank_row(5)[:4], "not money", *bank_row(5)[5:]])
    book.close()
    return path


def _bad_invoices(tmp_path: Path, kind: str) -> Path:
    """An invoice list that fails at once: not a zip, or a CSV without the columns."""
    if kind == "xlsx":
        path = tmp_path / "inv.xlsx"
        path.write_bytes(b"PK\x03\x04 not really a zip")
        return path
    return write_csv(tmp_path / "inv.csv", ["Nothing", "useful"], [["a", "b"]])


def _good_invoices(tmp_path: Path, kind: str) -> Path:
    rows = [["HD000001", "02/03/2026 09:00:00", "1.001", "", "", "Bán"]]
    if kind == "xlsx":
        return write_xlsx(tmp_path / "inv.xlsx", INVOICE_HEADER, rows, title=_TITLE)
    return write_csv(tmp_path / "inv.csv", INVOICE_HEADER, rows, title=_TITLE)


@pytest.mark.parametrize("inv_kind", ["xlsx", "csv"])
def test_both_files_bad_the_statements_error_wins(tmp_path: Path, inv_kind: str) -> None:
    # The invoice list fails in a millisecond, the statement only at its last row:
    # raising the first error to come would name the invoice list.
    bank = _slow_bad_bank(tmp_path / "bank.xlsx")
    invoices = _bad_invoices(tmp_path, inv_kind)
    with pytest.raises(InputFileError) as raised:
        reconcile(bank, invoices=invoices)
    assert raised.value.path == str(bank)
    assert raised.value.row == 8001 and raised.value.column == "Amount"
    # With the journal too: still the statement's (the journal reads well).
    with pytest.raises(InputFileError) as raised:
        reconcile(bank, invoices=invoices, entries=[entry(1001, invoice="HD000001")])
    assert raised.value.path == str(bank)


def test_a_bad_csv_statement_wins_over_a_bad_xlsx_list(tmp_path: Path) -> None:
    rows = [bank_row(1000 + n, invoice=f"HD{n:06d}") for n in range(3000)]
    rows.append([*bank_row(5)[:4], "not money", *bank_row(5)[5:]])
    bank = write_csv(tmp_path / "bank.csv", BANK_HEADER, rows)
    with pytest.raises(InputFileError) as raised:
        reconcile(bank, invoices=_bad_invoices(tmp_path, "xlsx"))
    assert raised.value.path == str(bank) and raised.value.row == 3002


@pytest.mark.parametrize("inv_kind", ["xlsx", "csv"])
def test_one_file_bad_its_error_is_raised(tmp_path: Path, inv_kind: str) -> None:
    good_bank = write_xlsx(tmp_path / "good.xlsx", BANK_HEADER,
                           [bank_row(1001, invoice="HD000001")])
    invoices = _bad_invoices(tmp_path, inv_kind)
    with pytest.raises(InputFileError) as raised:
        reconcile(good_bank, invoices=invoices)
    assert raised.value.path == str(invoices)
    good = tmp_path / "good"
    good.mkdir()
    bank = _slow_bad_bank(tmp_path / "bank.xlsx", rows=200)
    with pytest.raises(InputFileError) as raised:
        reconcile(bank, invoices=_good_invoices(good, inv_kind))
    assert raised.value.path == str(bank) and raised.value.row == 201
    # Both good: a report.
    assert reconcile(good_bank, invoices=_good_invoices(good, inv_kind)).summary


def _sides(tmp_path: Path, bank_kind: str, inv_kind: str) -> tuple[Path, Path]:
    """The same statement and invoice list as CSV or XLSX (every cell text, so both
    formats hold the same cells)."""
    bank_rows = [
        bank_row(150_000, invoice="HD000001", rrn="600000000001", receipt=1),
        bank_row(99_000, invoice="HD000002", receipt=2, approval="222222"),
        bank_row(99_000, invoice="HD000002", receipt=3, kind="VOID"),
        bank_row(42_000, invoice="", last4="1234", approval="333333", receipt=4),
        bank_row(7_000, invoice="HD000009", receipt=5),
        bank_row(150_000, invoice="HD000001", rrn="600000000001", receipt=6),
    ]
    inv_rows = [
        ["HD000001", "02/03/2026 09:00:00", "150.000", "", "", "Bán"],
        ["HD000002", "02/03/2026 09:01:00", "99.000", "", "", "Bán"],
        ["HD000003", "02/03/2026 09:02:00", "42.000", "970436******1234", "333333", "Bán"],
        ["HD000004", "02/03/2026 09:03:00", "12.500", "", "", "Bán"],
        ["HD000005", "02/03/2026 09:04:00", "88.000", "", "", "Bán"],
    ]
    out = []
    for name, kind, header, rows, title in (
        ("bank", bank_kind, BANK_HEADER, bank_rows, []),
        ("inv", inv_kind, INVOICE_HEADER, inv_rows, _TITLE),
    ):
        writer = write_xlsx if kind == "xlsx" else write_csv
        out.append(writer(tmp_path / f"{name}.{kind}", header, rows, title=title))
    return out[0], out[1]


def _json(bank: Path, invoices: Path, **kw: object) -> dict[str, object]:
    report = reconcile(bank, invoices=invoices, **kw)  # type: ignore[arg-type]
    data = json.loads(b"".join(json_chunks(report)))
    assert data.pop("sources") == {"bank": str(bank), "register": str(invoices)}
    return data  # type: ignore[no-any-return]


@pytest.mark.parametrize(("bank_kind", "inv_kind"),
                         [("xlsx", "xlsx"), ("xlsx", "csv"), ("csv", "xlsx")])
def test_the_report_is_the_same_read_together_or_one_after_the_other(
    tmp_path: Path, bank_kind: str, inv_kind: str
) -> None:
    csv_dir, other = tmp_path / "csv", tmp_path / "other"
    csv_dir.mkdir()
    other.mkdir()
    # Two CSV files are read one after the other; any XLSX file makes them read at once.
    one_by_one = _sides(csv_dir, "csv", "csv")
    together = _sides(other, bank_kind, inv_kind)
    expected = _json(*one_by_one)
    assert expected["summary"] != {}  # the report has something to compare
    assert _json(*together) == expected
    # With the journal lending card data (and one in-doubt sale the statement proves).
    journal = [entry(150_000, invoice="HD000001", ref_no="600000000001"),
               entry(7_000, invoice="HD000009", state=State.IN_DOUBT)]
    assert _json(*together, entries=journal) == _json(*one_by_one, entries=journal)
    # And side by side with each file read alone, one after the other.
    sides = read_sides(together[0], invoices=together[1])
    bank_frame, _ = read_frame(str(together[0]), "bank")
    inv_frame, _ = read_frame(str(together[1]), "invoices")
    assert sides.bank.equals(bank_frame) and sides.reg.equals(inv_frame)
    assert sides.dropped == {"bank": 0, "register": 0}
    assert sides.bank.height == 6 and sides.reg.height == 5
    assert DAY.date() == sides.bank.get_column("time")[0].date()


# --- the bounds check's cell count ---------------------------------------------------------


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.integers(0, 3000), limit=st.integers(26, 3000),
       tag=st.sampled_from(['<c r="A2"><v>1</v></c>', "<c/>", '<c\tr="B2"/>', "<c>x</c>"]))
def test_cells_as_written_refused_exactly_over_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cells: int, limit: int, tag: str
) -> None:
    """However a cell is written, even "<c/>" (the shortest, whose sheets can go
    uncounted when small enough): refused if and only if over the limit. (From 26:
    rows 1-2 of columns A-Z span at most 52 cells: within twice any such limit.)"""
    from ecrlink.reconcile import xlsx

    from .test_hostile import _bomb

    monkeypatch.setattr(xlsx, "MAX_XLSX_CELLS", limit)
    book = _bomb(tmp_path / f"c{cells}-{limit}.xlsx", 0,
                 b'<row r="2">' + tag.encode() * cells + b"</row>")
    if cells > limit:
        with pytest.raises(InputFileError, match=f"more than {limit:,} cells"):
            xlsx.check_workbook(str(book))
    else:
        assert xlsx.check_workbook(str(book))[0].name == "S"
