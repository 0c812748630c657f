"""Hostile and odd files, through the real command line in a subprocess.

Each either works or is one line on stderr with the bad-input exit code (4); never a
traceback. Reports never carry a live formula, in CSV or XLSX.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
import unicodedata
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from ecrlink import InputFileError
from ecrlink.cli.exit_codes import ExitStatus
from ecrlink.reconcile import MAX_CELL_CHARS

from .conftest import BANK_HEADER, bank_row, write_bank, write_csv

INVOICE_HEADER = ["Mã hóa đơn", "Ngày", "Số tiền"]


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecrlink", "reconcile", *args],
        capture_output=True, text=True, encoding="utf-8", timeout=timeout, check=False,
        env={**os.environ, "ECRLINK_LANG": "en"},
    )  # fmt: skip


def _refused(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == ExitStatus.BAD_INPUT, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _works(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (ExitStatus.OK, ExitStatus.DISCREPANCIES), done.stderr
    doc: dict[str, object] = json.loads(done.stdout)
    return doc


@pytest.fixture
def invoices(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "inv.csv", INVOICE_HEADER,
                     [["HD1", "02/03/2026 09:00", "150.000"]])


# --- formulas ---------------------------------------------------------------------------

FORMULAS = [
    '=HYPERLINK("http://evil.example",1)', "+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0", "\t=1+1", "\r=1+1",
]


def test_formula_cells_are_never_live_in_any_report(tmp_path: Path, invoices: Path) -> None:
    rows = [bank_row(150_000, invoice="HD1")]
    rows += [bank_row(1_000 + n, invoice=f, approval=f, receipt=n + 2, rrn="")
             for n, f in enumerate(FORMULAS)]  # fmt: skip
    for n, row in enumerate(rows[1:]):
        row[8] = FORMULAS[n]  # the Reference column too
    bank = write_bank(tmp_path / "bank.csv", rows)
    out_csv, out_xlsx = tmp_path / "r.csv", tmp_path / "r.xlsx"
    for out in (out_csv, out_xlsx):
        done = _cli("--bank", str(bank), "--invoices", str(invoices), "--out", str(out))
        assert done.returncode == ExitStatus.DISCREPANCIES and "Traceback" not in done.stderr

    with open(out_csv, encoding="utf-8-sig", newline="") as fh:
        report = list(csv.DictReader(fh))
    shown = {r["bank_invoice"] for r in report} | {r["bank_reference"] for r in report}
    # Cells are read stripped (so a leading tab or CR goes); invoice codes are compared
    # upper-cased. Each formula is there, behind a quote.
    for formula in (f.strip() for f in FORMULAS):
        assert ("'" + formula.upper()) in shown and ("'" + formula) in shown
    for r in report:
        for value in r.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    assert {r["bank_amount"] for r in report} >= {"1000", "150000"}  # numbers stay numbers

    from openpyxl import load_workbook

    book = load_workbook(out_xlsx)
    texts: set[str] = set()
    for sheet in book.worksheets:
        for line in sheet.iter_rows():
            for cell in line:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    texts.add(cell.value)
                    if cell.value.startswith(("=", "+", "-", "@", "\t", "\r")):
                        assert cell.quotePrefix, (sheet.title, cell.coordinate)
    assert {f.strip() for f in FORMULAS} <= texts  # the visible text is kept, unchanged
    amounts = [c.value for c in book["bank_only"]["C"][1:]]
    assert all(isinstance(a, int) for a in amounts) and 1_000 in amounts


def test_text_starting_with_a_tab_or_cr_is_quoted_too(tmp_path: Path) -> None:
    """Journal fields are not stripped: a reference sent as "\t=1+1" reaches a report."""
    from dataclasses import replace

    from openpyxl import load_workbook

    from ecrlink.reconcile import reconcile, write_report

    from .conftest import entry

    bank = write_bank(tmp_path / "bank.csv", [bank_row(1, invoice="Z", last4="")])
    sales = [replace(entry(150_000, invoice="HD1"), fields=("", "", "HD1", "", lead + "=1+1"))
             for lead in ("\t", "\r")]
    report = reconcile(bank, entries=sales)
    write_report(report, tmp_path / "r.csv")
    write_report(report, tmp_path / "r.xlsx")
    with open(tmp_path / "r.csv", encoding="utf-8-sig", newline="") as fh:
        refs = {r["reg_reference"] for r in csv.DictReader(fh)} - {""}
    assert refs == {"'\t=1+1", "'\r=1+1"}
    cells = [c for row in load_workbook(tmp_path / "r.xlsx")["ecr_only"].iter_rows(min_row=2)
             for c in row if isinstance(c.value, str) and c.value.endswith("=1+1")]
    # (openpyxl shows a carriage return as OOXML's escape _x000D_; Excel shows it.)
    assert {c.value for c in cells} == {"\t=1+1", "_x000D_=1+1"}
    assert all(c.quotePrefix and c.data_type == "s" for c in cells)


# --- sizes --------------------------------------------------------------------------------


def test_a_million_character_cell_is_one_line(tmp_path: Path, invoices: Path) -> None:
    huge = "A" * 1_000_000
    for column in (7, 8):  # Invoice (read), Reference (shown)
        row = bank_row(150_000, invoice="HD1")
        row[column] = huge
        bank = write_bank(tmp_path / "bank.csv", [bank_row(1, invoice="X"), row])
        line = _refused(_cli("--bank", str(bank), "--invoices", str(invoices), "--json"),
                        "row 3", f"{MAX_CELL_CHARS:,}", BANK_HEADER[column])
        assert len(line) < 400


def test_a_cell_up_to_the_limit_works(tmp_path: Path, invoices: Path) -> None:
    row = bank_row(150_000, invoice="HD1")
    row[8] = "R" * MAX_CELL_CHARS
    bank = write_bank(tmp_path / "bank.csv", [row])
    doc = _works(_cli("--bank", str(bank), "--invoices", str(invoices), "--json"))
    assert doc["summary"]["matched"]["count"] == 1  # type: ignore[index]


def _bomb(path: Path, shared_mb: int, sheet: bytes) -> Path:
    """A minimal workbook: one sheet, and a shared string of ``shared_mb`` MB (written
    a megabyte at a time: this process must stay small for the child's peak memory,
    which Linux counts from the fork)."""
    parts = {
        "[Content_Types].xml": b'<?xml version="1.0"?><Types xmlns="http://schemas.openxml'
        b'formats.org/package/2006/content-types"><Default Extension="xml" ContentType='
        b'"application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/'
        b'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName'
        b'="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedoc'
        b'ument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" Cont'
        b'entType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings'
        b'+xml"/></Types>',
        "_rels/.rels": b'<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlfo'
        b'rmats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas'
        b'.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/wo'
        b'rkbook.xml"/></Relationships>',
        "xl/workbook.xml": b'<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlfor'
        b'mats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/office'
        b'Document/2006/relationships"><sheets><sheet name="S" sheetId="1" r:id="rId1"/>'
        b"</sheets></workbook>",
        "xl/_rels/workbook.xml.rels": b'<?xml version="1.0"?><Relationships xmlns="http://sc'
        b'hemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="'
        b'http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Targ'
        b'et="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlfor'
        b'mats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml'
        b'"/></Relationships>',
        "xl/worksheets/sheet1.xml": b'<?xml version="1.0"?><worksheet xmlns="http://schemas.'
        b'openxmlformats.org/spreadsheetml/2006/main"><sheetData>' + sheet
        + b"</sheetData></worksheet>",
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
        with zf.open("xl/sharedStrings.xml", "w", force_zip64=True) as fh:
            fh.write(b'<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/'
                     b'spreadsheetml/2006/main"><si><t>Date</t></si><si><t>Amount</t></si>'
                     b"<si><t>")
            megabyte = b"A" * (1 << 20)
            for _ in range(shared_mb):
                fh.write(megabyte)
            fh.write(b"</t></si></sst>")
    return path


def _rows(*cells: str) -> bytes:
    return b"".join(c.encode() for c in cells)


def test_a_zip_bomb_is_refused_fast_and_small(tmp_path: Path, invoices: Path) -> None:
    # A 400 MB shared string (a few hundred KB zipped) used by a thousand cells.
    header = '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
    used = "".join(f'<row r="{n}"><c r="A{n}"><v>46000</v></c><c r="B{n}" t="s"><v>2</v></c>'
                   f"</row>" for n in range(2, 1002))
    bomb = _bomb(tmp_path / "bomb.xlsx", 400, _rows(header, used))
    assert bomb.stat().st_size < 2_000_000
    probe = (
        "import resource, runpy, sys; sys.argv = ['ecrlink', 'reconcile'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('ecrlink', run_name='__main__')\n"
        "finally:\n"
        "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stdout)\n"
    )
    args = ["--bank", str(bomb), "--invoices", str(invoices), "--json"]
    started = time.monotonic()
    if sys.platform == "win32":
        done = _cli(*args)
    else:
        done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True,
                              text=True, timeout=120, check=False)
    seconds = time.monotonic() - started
    _refused(done, str(bomb), "XLSX refused")
    if sys.platform != "win32":
        peak_mb = int(done.stdout.split()[-1]) / 1024
        assert peak_mb < 400, peak_mb  # the string was never built
    assert seconds < 30, seconds  # refused from headers and a streaming pass


def test_a_sheet_spanning_billions_of_cells_is_refused(tmp_path: Path, invoices: Path) -> None:
    cells = _rows('<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>',
                  '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>')
    bomb = _bomb(tmp_path / "wide.xlsx", 0, cells)
    _refused(_cli("--bank", str(bomb), "--invoices", str(invoices), "--json"), "cells")


def test_more_than_the_limit_once_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ecrlink import InputFileError
    from ecrlink.reconcile import xlsx

    book = _bomb(tmp_path / "b.xlsx", 3, b"")
    monkeypatch.setattr(xlsx, "MAX_XLSX_BYTES", 2 << 20)
    with pytest.raises(InputFileError, match="zip bomb"):
        xlsx.check_workbook(str(book))


def test_not_a_zip_and_a_broken_zip(tmp_path: Path, invoices: Path) -> None:
    (tmp_path / "a.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    _refused(_cli("--bank", str(tmp_path / "a.xlsx"), "--invoices", str(invoices)), "XLSX")
    good = _bomb(tmp_path / "b.xlsx", 0, b"")
    data = bytearray(good.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 40] = b"\0" * 40
    (tmp_path / "c.xlsx").write_bytes(bytes(data))
    _refused(_cli("--bank", str(tmp_path / "c.xlsx"), "--invoices", str(invoices)), "XLSX")


# --- encodings and shapes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [("utf-8", ","), ("utf-8-sig", ","), ("utf-16", "\t"), ("cp1258", ","), ("utf-8", ";"),
     ("cp1258", ";")],
)
def test_encodings_and_separators_work(
    tmp_path: Path, encoding: str, delimiter: str
) -> None:
    def written(path: Path, header: Sequence[str], rows: list[list[str]]) -> Path:
        if encoding != "cp1258":
            return write_csv(path, header, rows, delimiter=delimiter, encoding=encoding)
        write_csv(path, header, rows, delimiter=delimiter, encoding="utf-8")
        path.write_bytes(_cp1258(path.read_text(encoding="utf-8")))
        return path

    bank = written(tmp_path / "bank.csv", BANK_HEADER,
                   [bank_row(150_000, invoice="HĐ1"), bank_row(85_000, invoice="HĐ2")])
    inv = written(tmp_path / "inv.csv", INVOICE_HEADER, [["HĐ1", "02/03/2026 09:00", "150.000"]])
    doc = _works(_cli("--bank", str(bank), "--invoices", str(inv), "--json"))
    assert doc["summary"]["matched"]["count"] == 1  # type: ignore[index]
    assert doc["summary"]["bank_only"]["count"] == 1  # type: ignore[index]
    rows = doc["rows"]
    assert rows[0]["bank"]["invoice"] == "HĐ2"  # type: ignore[index]


def _cp1258(text: str) -> bytes:
    """Text as Windows writes Vietnamese in Windows-1258: a letter the code page has
    (â, ơ, đ...), then its tone mark as a combining character."""
    out = bytearray()
    for ch in text:
        try:
            out += ch.encode("cp1258")
        except UnicodeEncodeError:
            base, *marks = unicodedata.normalize("NFD", ch)
            if marks and unicodedata.normalize("NFC", base + marks[0]).encode("cp1258",
                                                                              "ignore"):
                base, marks = unicodedata.normalize("NFC", base + marks[0]), marks[1:]
            out += (base + "".join(marks)).encode("cp1258")
    return bytes(out)


def test_an_empty_file_is_one_line(tmp_path: Path, invoices: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    _refused(_cli("--bank", str(tmp_path / "empty.csv"), "--invoices", str(invoices)),
             "empty file")
    (tmp_path / "empty.xlsx").write_bytes(b"")
    _refused(_cli("--bank", str(tmp_path / "empty.xlsx"), "--invoices", str(invoices)))


def test_wrong_columns_are_one_line(tmp_path: Path, invoices: Path) -> None:
    wrong = write_csv(tmp_path / "wrong.csv", ["Name", "Price", "Qty"], [["a", "1", "2"]])
    _refused(_cli("--bank", str(wrong), "--invoices", str(invoices)), "no header row")
    half = write_csv(tmp_path / "half.csv", ["Date", "Card", "Invoice"], [["02/03/2026", "1", "A"]])
    _refused(_cli("--bank", str(half), "--invoices", str(invoices)), "amount")


# --- cell positions as calamine reads them (issue 14) -------------------------------------

_A1 = '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
_FAR = {
    # The cell's own reference counts, not its row's.
    "cell-ref-not-row": '<row r="2"><c r="XFD1048576" t="n"><v>1</v></c></row>',
    # Rows out of order: the highest is not the last.
    "rows-out-of-order": '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>'
                         '<row r="2"><c r="A2"><v>1</v></c></row>',
    "tab-before-r": '<row r="1048576"><c\tr="XFD1048576"><v>1</v></c></row>',
    "single-quotes": "<row r='1048576'><c r='XFD1048576'><v>1</v></c></row>",
    "spaces-around-equals": '<row r = "1048576"><c r = "XFD1048576"><v>1</v></c></row>',
    "r-not-first": '<row r="1048576"><c t="n" r="XFD1048576"><v>1</v></c></row>',
    "second-r-wins": '<row r="1048576"><c r="A1048576" r="XFD1048576"><v>1</v></c></row>',
    "prefixed": '<x:row r="1048576" xmlns:x="urn:x"><x:c r="XFD1048576"><x:v>1</x:v></x:c>'
                "</x:row>",
    "lowercase": '<row r="1048576"><c r="xfd1048576"><v>1</v></c></row>',
    # 16,384 cells without r: the last one is XFD1048576.
    "r-less-cells": '<row r="1048576">' + "<c><v>1</v></c>" * 16_384 + "</row>",
    # Past a spreadsheet's bounds: refused as not a spreadsheet's.
    "r-less-past-XFD": '<row r="5"><c r="XFA5"><v>1</v></c>' + "<c><v>1</v></c>" * 20_000
                       + "</row>",
    "r-less-rows-past-the-last": '<row r="1048576"><c r="A1048576"><v>1</v></c></row>'
                                 + "<row><c><v>1</v></c></row>" * 3_000,
    "row-past-the-last": '<row r="1048577"><c><v>1</v></c></row>',
}


def _cli_small(*args: str) -> subprocess.CompletedProcess[str]:
    """The command line in a child that cannot take more than 4 GB (Linux): were a
    sheet let through, calamine's allocation fails there, not on this machine."""
    if not sys.platform.startswith("linux"):
        return _cli(*args)
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    return subprocess.run(
        [sys.executable, "-m", "ecrlink", "reconcile", *args],
        capture_output=True, text=True, encoding="utf-8", timeout=120, check=False,
        env={**os.environ, "ECRLINK_LANG": "en"}, preexec_fn=limit,
    )  # fmt: skip


@pytest.mark.parametrize("name", sorted(_FAR))
def test_a_cell_far_away_however_written_is_refused(
    tmp_path: Path, invoices: Path, name: str
) -> None:
    """Each of these would have calamine allocate a rectangle of up to 17 billion
    cells (or lies past a spreadsheet's last row or column): one line, exit 4."""
    bomb = _bomb(tmp_path / f"{name}.xlsx", 0, _rows(_A1, _FAR[name]))
    _refused(_cli_small("--bank", str(bomb), "--invoices", str(invoices), "--json"),
             "XLSX refused")


def test_a_million_rows_of_thirty_columns_still_fit(tmp_path: Path) -> None:
    """The rectangle's bound: rows 1 to 1,048,576 of columns A to AD (31.5 million
    cells) fit; to BF (58 columns, 60.8 million) do not."""
    from ecrlink.reconcile import xlsx

    fits = _bomb(tmp_path / "fits.xlsx", 0, _rows(
        _A1, '<row r="1048576"><c r="AD1048576"><v>1</v></c></row>'))
    assert xlsx.check_workbook(str(fits))[0].first_row == 1
    over = _bomb(tmp_path / "over.xlsx", 0, _rows(
        _A1, '<row r="1048576"><c r="BF1048576"><v>1</v></c></row>'))
    with pytest.raises(InputFileError, match="spans"):
        xlsx.check_workbook(str(over))
    # An empty cell far away allocates nothing in calamine, and is not counted.
    empty = _bomb(tmp_path / "empty.xlsx", 0, _rows(
        _A1, '<row r="1048576"><c r="XFD1048576" s="1"/></row>'))
    assert xlsx.check_workbook(str(empty))[0].first_row == 1
