"""The report's forms: JSON, CSV and XLSX, both ways round where it reads back."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

import pytest

from ecrlink import ReconcileError
from ecrlink.reconcile import Category, Report, reconcile, write_json, write_report
from ecrlink.reconcile.report import CSV_COLUMNS

from .conftest import bank_row, entry, write_bank, write_csv, write_xlsx


@pytest.fixture
def report(tmp_path: Path) -> Report:
    bank = write_bank(tmp_path / "b.csv", [
        bank_row(150_000, invoice="HD1", approval="1"),
        bank_row(151_000, invoice="HD2", approval="2"),
        bank_row(99_000, invoice="ZZ", approval="3", last4="0000"),
    ])  # fmt: skip
    return reconcile(bank, entries=[
        entry(150_000, invoice="HD1", approval="1"),
        entry(150_000, invoice="HD2", approval="2"),
        entry(10_000, invoice="HD3", approval="4"),
    ])


def test_json_document(report: Report) -> None:
    out = io.StringIO()
    write_json(report, out)
    doc = json.loads(out.getvalue())
    assert doc == json.loads(json.dumps(report.to_dict()))
    assert list(doc["summary"]) == [c.value for c in Category]  # serious first
    assert doc["summary"]["amount_mismatch"] == {"count": 1, "amount": 151_000}
    assert doc["needs_attention"] is True
    categories = [r["category"] for r in doc["rows"]]
    assert categories == ["bank_only", "ecr_only", "amount_mismatch", "matched"]
    mismatch = doc["rows"][2]
    assert mismatch["key"] == "invoice" and mismatch["difference"] == 1_000
    assert mismatch["register"]["amount"] == 150_000 and mismatch["bank"]["amount"] == 151_000
    assert mismatch["bank"]["card"] == "970436******6163"
    assert mismatch["bank"]["time"] == "2026-03-02 09:00:00"


def test_csv_report_reads_back(report: Report, tmp_path: Path) -> None:
    write_report(report, tmp_path / "r.csv")
    with open(tmp_path / "r.csv", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["category"] for r in rows] == ["bank_only", "ecr_only", "amount_mismatch",
                                             "matched"]
    assert rows[2]["reg_invoice"] == "HD2" and rows[2]["bank_amount"] == "151000"


def test_xlsx_report_one_sheet_per_category(report: Report, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    write_report(report, tmp_path / "r.xlsx", lang="vi")
    book = load_workbook(tmp_path / "r.xlsx")
    assert book.sheetnames == ["summary", *(c.value for c in Category)]
    summary = list(book["summary"].iter_rows(values_only=True))
    assert summary[1][:4] == ("bank_only", "Ngân hàng đã thu, không có hóa đơn", 1, 99_000)
    assert "₫" in book["summary"]["D2"].number_format
    sheet = book["amount_mismatch"]
    header = [c.value for c in sheet[1]]
    values = dict(zip(header, [c.value for c in sheet[2]], strict=True))
    assert values["difference"] == 1_000 and values["bank_invoice"] == "HD2"
    assert isinstance(values["bank_time"], datetime)
    assert "₫" in sheet.cell(2, header.index("amount") + 1).number_format


def test_an_xlsx_report_reads_back_as_a_statement(report: Report, tmp_path: Path) -> None:
    """Our own XLSX output is a file the readers accept (XLSX both ways)."""
    write_report(report, tmp_path / "r.xlsx")
    from openpyxl import load_workbook

    sheet = load_workbook(tmp_path / "r.xlsx")["matched"]
    rows = [[r[CSV_COLUMNS.index(c)] for c in ("bank_time", "bank_amount", "bank_invoice")]
            for r in sheet.iter_rows(min_row=2, values_only=True)]
    path = write_xlsx(tmp_path / "again.xlsx", ["Date", "Amount", "Invoice"], rows)
    invoices = write_csv(tmp_path / "i.csv", ["Invoice", "Amount"], [["HD1", "150000"]])
    again = reconcile(path, invoices=invoices)
    assert again.summary[Category.MATCHED].count == 1 and not again.needs_attention


def test_unknown_report_suffix(report: Report, tmp_path: Path) -> None:
    with pytest.raises(ReconcileError, match="xlsx"):
        write_report(report, tmp_path / "r.pdf")


def test_full_card_numbers_never_reach_a_report(tmp_path: Path) -> None:
    header = ["Date", "Amount", "Card number", "Invoice"]
    bank = write_csv(tmp_path / "b.csv", header, [["02/03/2026", "1", "9704001234566163", "A"]])
    report = reconcile(bank, entries=[])
    out = io.StringIO()
    write_json(report, out)
    assert "9704001234566163" not in out.getvalue()
    assert "970400XXXXXX6163" in out.getvalue()


@pytest.mark.parametrize("ascii_only", [False, True])
def test_json_rows_are_json_dumps_of_each_row(tmp_path: Path, ascii_only: bool) -> None:
    """The rows, built as text by polars, are byte for byte what json.dumps writes of
    each row (compact): escapes, nulls, times with and without microseconds, a side
    row on some rows only."""
    from ecrlink.reconcile.writers import json_chunks

    # DEL is ASCII, but json.dumps' ensure_ascii escapes it: so must ascii_only.
    odd = ['say "hi"', "back\\slash", "tab\there", "bell\x07", "Hủy đơn", "emoji 💳", "\x7f"]
    bank = write_bank(tmp_path / "b.csv", [
        bank_row(1000 + n, invoice=f"HD{n}", approval=str(n), at=datetime(2026, 3, 2, 9, n))
        for n in range(len(odd))
    ] + [bank_row(5, invoice="", approval="77", last4="")])  # fmt: skip
    # A reference column the statement does not have: put the odd texts in the journal's.
    entries = [entry(1000 + n, invoice=f"HD{n}", approval=str(n), receipt=text,
                     at=datetime(2026, 3, 2, 9, n, 0, 123_456 * (n % 2)))
               for n, text in enumerate(odd)]  # fmt: skip
    entries.append(entry(7, invoice="ZZ", approval=None, card=None, receipt=None))
    report = reconcile(bank, entries=entries)
    text = b"".join(json_chunks(report, ascii_only=ascii_only)).decode()
    lines = text.split("\n")[1:-2]  # the head, then a row a line, then "]}"
    rows = [r.to_dict() for r in report.rows()]
    assert len(lines) == len(rows) == len(odd) + 2
    expected = [json.dumps(r, ensure_ascii=ascii_only, separators=(",", ":")) for r in rows]
    assert [line.removesuffix(",") for line in lines] == expected
    assert json.loads(text) == json.loads(json.dumps(report.to_dict()))


def test_rows_of_one_category_and_time_keep_their_file_order_whatever_the_engine_gave(
    tmp_path: Path,
) -> None:
    # Every row at the same moment and in the same category: only the tie-break
    # orders them. The engine's joins may list them in any order from one run to the
    # next (threads); the report must not follow it.
    from ecrlink.reconcile.report import _sorted

    bank = write_bank(tmp_path / "b.csv", [
        bank_row(1_000 + i, invoice=f"B{i}", approval=f"{i}") for i in range(40)
    ])  # fmt: skip
    report = reconcile(bank, entries=[
        entry(2_000 + i, invoice=f"R{i}", approval=f"9{i}") for i in range(40)
    ])  # fmt: skip
    items = report._unsorted
    forward = _sorted(report._reg, report._bank, items)
    for shuffled in (items.reverse(), items.sample(fraction=1.0, shuffle=True, seed=3)):
        assert _sorted(report._reg, report._bank, shuffled).equals(forward)
    bank_only = forward.filter(forward.get_column("category") == "bank_only")
    assert bank_only.get_column("bank").to_list() == sorted(bank_only.get_column("bank"))
