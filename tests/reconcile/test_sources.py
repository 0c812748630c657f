"""Reading statements and invoice lists: headers, synonyms, formats, bad files."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ecrlink import InputFileError
from ecrlink.journal.records import State
from ecrlink.reconcile import reconcile
from ecrlink.reconcile.columns import ColumnMapping, find_header, load_mapping
from ecrlink.reconcile.frames import read_frame
from ecrlink.reconcile.model import IN_DOUBT
from ecrlink.reconcile.sources import rows_from_entries
from ecrlink.reconcile.values import Kind

from .conftest import (
    DAY,
    bank_row,
    categories,
    entry,
    side_of,
    write_bank,
    write_csv,
    write_xlsx,
)


def _read(path: Path, role: str = "bank", mapping: ColumnMapping | None = None) -> Any:
    """Read a file, as a side of Python values."""
    frame, dropped = read_frame(str(path), role, mapping)  # type: ignore[arg-type]
    side = side_of(frame)
    side.dropped = dropped
    return side


def test_the_simulator_statement_needs_no_mapping(tmp_path: Path) -> None:
    path = write_bank(tmp_path / "s.csv", [
        bank_row(123456, invoice="HD0001", rrn="020037020001"),
        bank_row(123456, invoice="HD0001", kind="VOID", receipt=2),
    ])  # fmt: skip
    side = _read(path)
    assert side.kind == [Kind.SALE, Kind.VOID]
    assert side.amount == [123456, 123456]
    assert side.time == [DAY, DAY]
    assert side.invoice == ["HD0001", "HD0001"]
    assert side.last4 == ["6163", "6163"]
    assert side.card[0] == "970436******6163"
    assert side.approval[0] == "111112"
    assert side.ref_no[0] == "020037020001"
    assert side.receipt == ["000001", "000002"]
    assert side.row == [2, 3]


VIETNAMESE = ("Ngày giao dịch", "Số tiền giao dịch", "Số thẻ", "Mã cấp phép", "Số tham chiếu",
              "Số hóa đơn", "Mã thiết bị", "Mã đơn vị", "Số lô", "Số biên lai", "Loại giao dịch")
ENGLISH = ("Transaction date", "Amount", "PAN", "Auth code", "Ref no", "Bill no", "Terminal ID",
           "Merchant ID", "Batch", "Receipt", "Type")
FOLDED = ("NGAY GIAO DICH", "so tien", "SO THE", "ma chuan chi", "RRN", "ma hoa don", "tid",
          "mid", "so lo", "receipt no", "loai")


@pytest.mark.parametrize("header", [VIETNAMESE, ENGLISH, FOLDED])
def test_synonyms_in_both_languages_any_case_no_accents(
    tmp_path: Path, header: tuple[str, ...]
) -> None:
    row = ["14/06/2015 15:55:43", "1.234.567 đ", "9704 XXXX XXXX 6163", "111112",
           "020037020001", "HD0001", "31002095", "000000100091555", "3", "6", "Thanh toán"]
    side = _read(write_csv(tmp_path / "s.csv", header, [row]))
    assert (side.amount, side.invoice, side.last4, side.approval, side.ref_no) == (
        [1_234_567], ["HD0001"], ["6163"], ["111112"], ["020037020001"]
    )
    assert (side.tid, side.mid, side.batch, side.receipt) == (
        ["31002095"], ["000000100091555"], ["3"], ["6"]
    )
    assert side.time == [datetime(2015, 6, 14, 15, 55, 43)]


def test_title_block_units_and_other_delimiters(tmp_path: Path) -> None:
    title = [["SAO KÊ GIAO DỊCH THẺ"], ["Đơn vị: Cửa hàng ABC", "MID: 000000100091555"], []]
    header = ["STT", "Thời gian", "Số tiền (VNĐ)", "Số thẻ", "Mã chuẩn chi", "Mã HĐ"]
    rows = [["1", "2026-03-02 09:00:00", "150,000", "970436******1234", "12345", "hd1"],
            ["2", "2026-03-02 09:05:00", "85.000", "970436******9999", "A1B2C3", "HD2"],
            [], ["Tổng cộng", "", "235.000"]]
    for delimiter in (",", ";", "\t"):
        path = write_csv(tmp_path / "s.csv", header, rows, title=title, delimiter=delimiter)
        side = _read(path)
        assert side.amount == [150_000, 85_000]
        assert side.invoice == ["HD1", "HD2"]
        assert side.approval == ["012345", "A1B2C3"]
        assert side.row == [5, 6]


def test_xlsx_with_title_numbers_and_dates(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "s.xlsx",
        ["Ngày giao dịch", "Số tiền", "Số thẻ", "Mã chuẩn chi", "Số hóa đơn", "Loại"],
        [[datetime(2026, 3, 2, 9, 0), 150000, "970436******1234", 12345, "HD1", "SALE"],
         ["02/03/2026 09:05:00", "85.000 đ", "970436******9999", "654321", "HD2", "Hủy"]],
        title=[["Merchant portal export"], []],
    )  # fmt: skip
    side = _read(path)
    assert side.amount == [150_000, 85_000]
    assert side.time == [datetime(2026, 3, 2, 9, 0), datetime(2026, 3, 2, 9, 5)]
    assert side.approval == ["012345", "654321"]
    assert side.kind == [Kind.SALE, Kind.VOID]
    assert side.row == [4, 5]


def test_status_column_leaves_declines_out(tmp_path: Path) -> None:
    header = ["Date", "Amount", "Invoice", "Status"]
    rows = [["02/03/2026", "100", "A", "Thành công"], ["02/03/2026", "200", "B", "Từ chối"]]
    side = _read(write_csv(tmp_path / "s.csv", header, rows))
    assert side.invoice == ["A"]
    assert side.dropped == 1


def test_full_card_numbers_are_masked(tmp_path: Path) -> None:
    header = ["Date", "Amount", "Invoice", "Card"]
    rows = [["02/03/2026", "100", "A", "9704361234566163"], ["02/03/2026", "200", "B", ""]]
    side = _read(write_csv(tmp_path / "s.csv", header, rows))
    assert side.card == ["970436XXXXXX6163", ""]
    assert side.last4 == ["6163", ""]


def test_negative_amount_without_type_is_a_void(tmp_path: Path) -> None:
    rows = [["02/03/2026", "100.000", "A"], ["02/03/2026", "-100.000", "A"]]
    side = _read(write_csv(tmp_path / "s.csv", ["Date", "Amount", "Invoice"], rows))
    assert side.kind == [Kind.SALE, Kind.VOID]
    assert side.amount == [100_000, 100_000]


def test_separate_time_column_and_quoted_line_breaks(tmp_path: Path) -> None:
    rows = [["02/03/2026", "09:05:01", "100", "A", "note\non two lines"]]
    path = write_csv(tmp_path / "s.csv", ["Ngày", "Giờ", "Amount", "Invoice", "Ghi chú"], rows)
    side = _read(path)
    assert side.time == [datetime(2026, 3, 2, 9, 5, 1)]


def test_utf16_export(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", ["Date", "Amount", "Invoice"],
                     [["02/03/2026", "100", "Á"]], delimiter="\t", encoding="utf-16")
    assert _read(path).invoice == ["Á"]


# --- bad input: file, row and column named; nothing partial ---------------------------


def _error(path: Path, role: str = "bank") -> InputFileError:
    with pytest.raises(InputFileError) as caught:
        _read(path, role)
    assert caught.value.path == str(path)
    return caught.value


def test_no_amount_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", ["Date", "Invoice", "Card"], [["02/03/2026", "A", "1"]])
    err = _error(path)
    assert "amount" in str(err) and err.row == 1


def test_unparseable_amount(tmp_path: Path) -> None:
    rows = [bank_row(100), bank_row(100), ["02/03/2026 09:00:00", "", "", "", "12.50"]]
    err = _error(write_bank(tmp_path / "s.csv", rows))
    assert (err.row, err.column) == (4, "Amount")
    assert "fraction" in str(err)


def test_unparseable_date(tmp_path: Path) -> None:
    rows = [bank_row(100), ["31/02/2026 09:00:00", "", "", "", "100"]]
    err = _error(write_bank(tmp_path / "s.csv", rows))
    assert (err.row, err.column) == (3, "Transaction date")


def test_empty_date_and_empty_amount(tmp_path: Path) -> None:
    err = _error(write_bank(tmp_path / "a.csv", [["", "", "", "", "100"]]))
    assert (err.row, err.column) == (2, "Transaction date")
    err = _error(write_bank(tmp_path / "b.csv", [["02/03/2026", "", "", "", " "]]))
    assert (err.row, err.column) == (2, "Amount")


def test_unknown_type(tmp_path: Path) -> None:
    err = _error(write_bank(tmp_path / "s.csv", [bank_row(100, kind="SETTLE")]))
    assert (err.row, err.column) == (2, "Type")


def test_unknown_status(tmp_path: Path) -> None:
    header = ["Date", "Amount", "Invoice", "Status"]
    rows = [["02/03/2026", "100", "A", "Thành công"], ["02/03/2026", "200", "B", "maybe"]]
    err = _error(write_csv(tmp_path / "s.csv", header, rows))
    assert (err.row, err.column) == (3, "Status")
    assert "unknown status" in str(err)


def test_duplicated_header(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", ["Date", "Số tiền", "Amount"], [["02/03/2026", "1", "1"]])
    err = _error(path)
    assert "duplicated header" in str(err)
    assert (err.row, err.column) == (1, "Amount")


def test_empty_files(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    assert "empty file" in str(_error(tmp_path / "empty.csv"))
    (tmp_path / "blank.csv").write_text("\n\n ,, \n")
    assert "empty file" in str(_error(tmp_path / "blank.csv"))


def test_not_a_statement_and_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "notes.csv").write_text("hello\nworld\n")
    assert "no header row" in str(_error(tmp_path / "notes.csv"))
    # Excel's plain "CSV" on Vietnamese Windows is Windows-1258: read, tone marks composed.
    (tmp_path / "cp.csv").write_bytes("Date,Amount,Invoice\n02/03/2026,1,Hóa\n".encode("cp1258"))
    assert _read(tmp_path / "cp.csv").invoice == ["HÓA"]
    # Bytes that are neither UTF-8 nor Windows-1258 text.
    (tmp_path / "bin.csv").write_bytes(b"Date,Amount,Invoice\n02/03/2026,1,\x81\xfe\n")
    err = _error(tmp_path / "bin.csv")
    assert "UTF-8" in str(err) and err.row == 2
    (tmp_path / "x.xlsx").write_bytes(b"PK\x03\x04 not really")
    assert "XLSX" in str(_error(tmp_path / "x.xlsx"))
    assert "cannot read" in str(_error(tmp_path / "missing.csv"))


def test_invoice_list_needs_invoice_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "i.csv", ["Date", "Amount"], [["02/03/2026", "1"]])
    assert "invoice" in str(_error(path, role="invoices"))


def test_bad_input_yields_no_report(tmp_path: Path) -> None:
    bank = write_bank(tmp_path / "s.csv", [bank_row(100, invoice="A"), ["x", "", "", "", "1"]])
    invoices = write_csv(tmp_path / "i.csv", ["Invoice", "Amount"], [["A", "100"]])
    with pytest.raises(InputFileError):
        reconcile(bank, invoices=invoices)


# --- mapping file -----------------------------------------------------------------------


def test_mapping_file_overrides_detection(tmp_path: Path) -> None:
    (tmp_path / "map.toml").write_text(
        '[bank]\nheader_row = 2\n[bank.columns]\namount = "Giá trị"\ndate = "Ngày GD"\n'
        'invoice = 5\n[bank.types]\nsale = ["Thanh toán QR"]\n'
        '[invoices.columns]\ninvoice = "Số chứng từ"\n',
        encoding="utf-8",
    )
    mapping = load_mapping(tmp_path / "map.toml")
    path = write_csv(
        tmp_path / "s.csv",
        ["Ngày GD", "Giá trị", "Amount", "Loại", "Diễn giải"],
        [["02/03/2026", "100", "999", "Thanh toán QR", "HD9"]],
        title=[["Sao kê"]],
    )
    side = _read(path, mapping=mapping["bank"])
    assert (side.amount, side.invoice, side.kind) == ([100], ["HD9"], [Kind.SALE])
    assert mapping["invoices"].columns == {"invoice": "Số chứng từ"}


def test_mapping_file_json_and_its_errors(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text(json.dumps({"columns": {"amount": "Value"}}))
    assert load_mapping(tmp_path / "m.json")["bank"].columns == {"amount": "Value"}
    (tmp_path / "bad.toml").write_text("[bank.columns]\nprice = 'x'\n")
    with pytest.raises(InputFileError, match="unknown field"):
        load_mapping(tmp_path / "bad.toml")
    (tmp_path / "broken.toml").write_text("[bank\n")
    with pytest.raises(InputFileError, match="not a valid mapping"):
        load_mapping(tmp_path / "broken.toml")
    rows = [["Date", "Amount"], ["02/03/2026", "1"]]
    with pytest.raises(InputFileError, match="'Value'"):
        find_header(rows, "s.csv", "bank", ColumnMapping(columns={"amount": "Value"}))


# --- the journal as the register side ---------------------------------------------------


def test_rows_from_entries() -> None:
    sale = entry(150_000, invoice="HD1", receipt="000001")
    other = entry(85_000, invoice="HD2", receipt="2")
    void = entry(None, command="void", void_of="1", receipt="3", card=None, approval=None)
    doubt = entry(200_000, invoice="HD3", state=State.IN_DOUBT)
    pending = entry(10_000, invoice="HD4", state=State.PENDING)
    declined = entry(50_000, invoice="HD5", state=State.DECLINED)
    settle = entry(None, command="settle")
    side = side_of(rows_from_entries([sale, other, void, doubt, pending, declined, settle]))
    assert side.row == [sale.id, other.id, doubt.id, pending.id, void.id]
    assert side.state == ["approved", "approved", IN_DOUBT, IN_DOUBT, "approved"]
    assert side.kind[-1] is Kind.VOID
    assert side.link[-1] == 0  # void_of "1" is receipt "000001"
    assert (side.amount[-1], side.invoice[-1], side.last4[-1]) == (150_000, "HD1", "6163")


def test_void_of_another_terminal_or_batch_is_not_linked() -> None:
    sale = entry(150_000, invoice="HD1", receipt="1", batch="3")
    void = entry(None, command="void", void_of="1", batch="4")
    elsewhere = entry(None, command="void", void_of="1", tid="99999999")
    side = side_of(rows_from_entries([sale, void, elsewhere]))
    assert side.link[1:] == [-1, -1]


def test_journal_enriches_an_invoice_list(tmp_path: Path) -> None:
    invoices = write_csv(tmp_path / "i.csv", ["Mã hóa đơn", "Số tiền"], [["HD1", "150.000"]])
    bank = write_bank(tmp_path / "s.csv", [bank_row(150_000)])  # no invoice at the bank
    report = reconcile(bank, invoices=invoices, entries=[entry(150_000, invoice="HD1")],
                       )
    assert categories(report) == {"matched": 1}
    row = next(report.rows())
    assert row.key is not None and row.key.value == "card_approval"
    assert row.register is not None and row.register.card == "9704 XXXX XXXX 6163"
