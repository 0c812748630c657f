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


# --- the bounds check against calamine's own rules (issue 14) ------------------------------

_ROWS, _COLS = 1_048_576, 16_384
_ROW_NUMBERS = st.one_of(st.integers(1, 40), st.sampled_from([_ROWS, _ROWS + 1]))
_COL_NUMBERS = st.one_of(st.integers(1, 40), st.sampled_from([_COLS - 2, _COLS, _COLS + 1]))
_SPELLING = st.fixed_dictionaries({
    "quote": st.sampled_from(['"', "'"]),
    "space": st.sampled_from([" ", "\t", "\n", "  "]),
    "equals": st.sampled_from(["=", " = ", "= "]),
    "prefix": st.sampled_from(["", "", "x:"]),
    "lower": st.booleans(),
    "r_last": st.booleans(),
})  # fmt: skip
_CELL = st.tuples(st.none() | st.tuples(_ROW_NUMBERS, _COL_NUMBERS), st.booleans(), _SPELLING)
_ROW = st.tuples(st.none() | _ROW_NUMBERS, st.lists(_CELL, max_size=6), _SPELLING)


def _letters(col: int) -> str:
    out = ""
    while col:
        col, rest = divmod(col - 1, 26)
        out = chr(65 + rest) + out
    return out


def _attr(name: str, value: str, s: dict[str, object]) -> str:
    q = str(s["quote"])
    return f"{s['space']}{name}{s['equals']}{q}{value}{q}"


def _sheet_xml(rows: list[tuple[object, ...]]) -> bytes:
    out = []
    for row_r, cells, s in rows:
        p = s["prefix"]  # type: ignore[index]
        out.append(f"<{p}row" + (_attr("r", str(row_r), s) if row_r else "") + ">")  # type: ignore[arg-type]
        for ref, valued, c in cells:  # type: ignore[attr-defined]
            attrs = [_attr("t", "n", c)]
            if ref is not None:
                letters = _letters(ref[1])
                attrs.append(_attr("r", (letters.lower() if c["lower"] else letters)
                                   + str(ref[0]), c))
                if not c["r_last"]:
                    attrs.reverse()
            q = c["prefix"]
            body = f"<{q}v>1</{q}v>" if valued else ""
            out.append(f"<{q}c{''.join(attrs)}>{body}</{q}c>")
        out.append(f"</{p}row>")
    return "".join(out).encode()


def _calamine(
    rows: list[tuple[object, ...]], limit: int
) -> tuple[bool, tuple[int, int] | None, int]:
    """calamine 0.36's walk (XlsxCellReader::next_cell, Range::from_sparse), written
    apart from the module's: (refused, the rectangle's (rows, columns), first row).
    Refused: a cell past a spreadsheet's bounds, more cells than ``limit``, or a
    rectangle of more than twice ``limit``."""
    row_index = col_index = count = 0
    valued: list[tuple[int, int]] = []
    past = False
    for row_r, cells, _ in rows:
        if row_r:
            row_index = int(row_r) - 1  # type: ignore[call-overload]
        for ref, has_value, _s in cells:  # type: ignore[attr-defined]
            pos = (ref[0] - 1, ref[1] - 1) if ref else (row_index, col_index)
            col_index = pos[1] + 1
            count += 1
            past |= pos[0] >= _ROWS or pos[1] >= _COLS
            if has_value:
                valued.append(pos)
        row_index += 1
        col_index = 0
    if not valued:
        return past or count > limit, None, 1
    top, bottom = min(r for r, _ in valued), max(r for r, _ in valued)
    left, right = min(c for _, c in valued), max(c for _, c in valued)
    shape = (bottom - top + 1, right - left + 1)
    return past or count > limit or shape[0] * shape[1] > 2 * limit, shape, top + 1


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_ROW, max_size=8))
def test_refused_exactly_when_calamine_would_span_too_many_cells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[tuple[object, ...]]
) -> None:
    """Random sheets (references in any spelling and order, cells and rows without
    ``r``, empty cells): refused exactly when the model of calamine says so; when
    not, calamine (fastexcel) reads the rectangle the model computed."""
    import fastexcel

    from ecrlink.reconcile import xlsx

    from .test_hostile import _bomb

    monkeypatch.setattr(xlsx, "MAX_XLSX_CELLS", 1000)
    book = _bomb(tmp_path / "s.xlsx", 0, _sheet_xml(rows))
    refused, shape, first = _calamine(rows, 1000)
    if refused:
        with pytest.raises(InputFileError, match="XLSX refused"):
            xlsx.check_workbook(str(book))
        return
    assert xlsx.check_workbook(str(book))[0].first_row == first
    frame = fastexcel.read_excel(str(book)).load_sheet(0, header_row=None).to_polars()
    assert frame.shape == (shape or (0, 0))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_ROW, max_size=8))
def test_the_fast_pass_never_lets_a_huge_rectangle_through(
    tmp_path: Path, rows: list[tuple[object, ...]]
) -> None:
    """At the real limit (where plain sheets take the fast pass): a rectangle the
    model of calamine finds too large is refused; a sheet of small references is not.
    (A cell past row 1,048,576 but within 1,099,999 may pass here: calamine reads it.)"""
    from ecrlink.reconcile import xlsx

    from .test_hostile import _bomb

    book = _bomb(tmp_path / "s.xlsx", 0, _sheet_xml(rows))
    limit = xlsx.MAX_XLSX_CELLS
    _, shape, _ = _calamine(rows, limit)
    refused = shape is not None and shape[0] * shape[1] > 2 * limit
    small = all(ref is None or (ref[0] <= 40 and ref[1] <= 40)
                for row_r, cells, _ in rows for ref, _v, _s in cells)  # type: ignore[attr-defined]
    if refused:
        with pytest.raises(InputFileError, match="XLSX refused"):
            xlsx.check_workbook(str(book))
    elif small and all(r is None or r <= 40 for r, _c, _s in rows):
        xlsx.check_workbook(str(book))


_LONG_SPELLING = st.fixed_dictionaries({
    "quote": st.sampled_from(['"', "'"]),
    "space": st.sampled_from([" ", "\t", " " * 70, " " * 200, "\n" * 65]),
    "equals": st.sampled_from(["=", " = ", " " * 80 + "=" + " " * 80]),
    "prefix": st.sampled_from(["", "x:"]),
    "lower": st.booleans(),
    "r_last": st.booleans(),
})  # fmt: skip
_LONG_CELL = st.tuples(st.none() | st.tuples(_ROW_NUMBERS, _COL_NUMBERS), st.booleans(),
                       _LONG_SPELLING)
_LONG_ROW = st.tuples(st.none() | _ROW_NUMBERS, st.lists(_LONG_CELL, max_size=6), _LONG_SPELLING)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_LONG_ROW, max_size=10), chunk=st.integers(130, 600))
def test_no_chunk_edge_lets_a_huge_rectangle_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[tuple[object, ...]],
    chunk: int,
) -> None:
    """The fast pass reads a sheet a chunk at a time and judges a tag cut by a chunk's
    edge with the next chunk. With chunks of a few hundred bytes, and references
    spread over runs of whitespace longer than the part it reads again, every edge
    falls somewhere new: a rectangle too large for calamine is still refused."""
    from ecrlink.reconcile import xlsx

    from .test_hostile import _bomb

    monkeypatch.setattr(xlsx, "_CHUNK", chunk)
    book = _bomb(tmp_path / "s.xlsx", 0, _sheet_xml(rows))
    limit = xlsx.MAX_XLSX_CELLS
    _, shape, _ = _calamine(rows, limit)
    if shape is not None and shape[0] * shape[1] > 2 * limit:
        with pytest.raises(InputFileError, match="XLSX refused"):
            xlsx.check_workbook(str(book))


@pytest.mark.parametrize("far", ["XFD1048576", "BF1048576"])
def test_a_wide_reference_at_any_place_around_a_chunk_edge_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, far: str
) -> None:
    """The fast pass reads a wide reference's column from the chunk where it starts;
    when the chunk's edge cut it before its digits, the column was missed (14 of
    these 256 places let A1:XFD1048576 through)."""
    from ecrlink.reconcile import xlsx

    from .test_hostile import _bomb

    monkeypatch.setattr(xlsx, "_CHUNK", 256)
    for pad in range(256):  # the far reference at each place of a chunk
        sheet = (
            '<row r="1"><c r="A1" t="n"><v>1</v></c></row>'
            f'<row r="2"><c r="A2" t="inlineStr"><is><t>{"x" * pad}</t></is></c></row>'
            f'<row r="3"><c r="{far}" t="n"><v>1</v></c></row>'
            + "".join(f'<row r="{n}"><c r="A{n}" t="n"><v>1</v></c></row>'
                      for n in range(4, 30))
        )  # fmt: skip
        book = _bomb(tmp_path / f"far{pad}.xlsx", 0, sheet.encode())
        with pytest.raises(InputFileError, match="XLSX refused"):
            xlsx.check_workbook(str(book))
