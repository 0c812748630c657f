"""Cells as banks and registers write them: amounts, dates, cards, types."""

from __future__ import annotations

import contextlib
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecrlink import ReconcileError
from ecrlink.reconcile.columns import fold_header
from ecrlink.reconcile.values import (
    Kind,
    card_last4,
    fold,
    mask_card,
    norm_approval,
    norm_ref_no,
    parse_amount,
    parse_datetime,
    parse_kind,
    parse_status,
    parse_time_of_day,
)


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("1234567", 1_234_567),
        ("1.234.567", 1_234_567),
        ("1,234,567", 1_234_567),
        ("1234567.00", 1_234_567),
        ("1.234.567 đ", 1_234_567),
        ("1.234.567đ", 1_234_567),
        ("1.234.567 ₫", 1_234_567),
        ("1 234 567 VND", 1_234_567),
        ("VND 1,234,567", 1_234_567),
        ("1.234.567,00", 1_234_567),
        ("1,234,567.00", 1_234_567),
        ("1.000", 1_000),  # a thousands separator: VND has no fractions
        ("1234.000", 1_234),  # four digits before: not grouping, a zero fraction
        ("-150.000", -150_000),
        ("(150.000)", -150_000),
        ("0", 0),
        (123456, 123_456),
        (123456.0, 123_456),
    ],
)
def test_amount_formats(text: object, amount: int) -> None:
    assert parse_amount(text) == amount


@pytest.mark.parametrize(
    "text",
    ["", "abc", "1234.50", "12.5", "1.2.3", "1,23,456", "--5", "1e5", 1234.5, "1.234.567,5",
     float("nan"), True, "9" * 16],
)
def test_bad_amounts_are_our_error(text: object) -> None:
    with pytest.raises(ReconcileError):
        parse_amount(text)


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("14/06/2015 15:55:43", datetime(2015, 6, 14, 15, 55, 43)),
        ("14/06/2015 15:55", datetime(2015, 6, 14, 15, 55)),
        ("14/06/2015", datetime(2015, 6, 14)),
        ("1/6/2015 7:05:00", datetime(2015, 6, 1, 7, 5)),
        ("14-06-2015 15:55:43", datetime(2015, 6, 14, 15, 55, 43)),
        ("14.06.2015", datetime(2015, 6, 14)),
        ("2015-06-14", datetime(2015, 6, 14)),
        ("2015-06-14T15:55:43", datetime(2015, 6, 14, 15, 55, 43)),
        ("2015-06-14 15:55:43.250", datetime(2015, 6, 14, 15, 55, 43, 250_000)),
        ("2015-06-14T08:55:43Z", datetime(2015, 6, 14, 15, 55, 43)),  # to Vietnam time
        ("2015-06-14T15:55:43+07:00", datetime(2015, 6, 14, 15, 55, 43)),
        ("20150614155543", datetime(2015, 6, 14, 15, 55, 43)),  # the terminal's form
        (datetime(2015, 6, 14, 15, 55), datetime(2015, 6, 14, 15, 55)),
        (42169.5, datetime(2015, 6, 14, 12, 0)),  # a spreadsheet serial day
    ],
)
def test_date_formats(text: object, moment: datetime) -> None:
    assert parse_datetime(text) == moment


@pytest.mark.parametrize(
    "text", ["", "31/02/2026", "2026-13-01", "14/06/15", "yesterday", "0001-01-01", 5, "25:00"]
)
def test_bad_dates_are_our_error(text: object) -> None:
    with pytest.raises(ReconcileError):
        parse_datetime(text)


def test_time_of_day() -> None:
    assert parse_time_of_day("7:05").hour == 7
    with pytest.raises(ReconcileError):
        parse_time_of_day("7h05")


@pytest.mark.parametrize(
    ("card", "last4"),
    [
        ("9704 XXXX XXXX 6163", "6163"),
        ("970400******6163", "6163"),
        ("4720XXXXXXXX5184", "5184"),
        ("************6163", "6163"),
        ("XXXX-XXXX-XXXX-6163", "6163"),
        ("6163", "6163"),
        ("6163XXXX", ""),  # masked at the end: the last digits are unknown
        ("", ""),
        ("12", ""),
    ],
)
def test_card_last4(card: str, last4: str) -> None:
    assert card_last4(card) == last4


def test_a_full_card_number_is_masked() -> None:
    assert mask_card("9704001234566163") == "970400XXXXXX6163"
    assert mask_card("9704 0012 3456 6163") == "9704 00XX XXXX 6163"
    assert mask_card("970400******6163") == "970400******6163"


def test_codes_get_back_zeros_a_spreadsheet_ate() -> None:
    assert norm_approval("12345") == "012345"
    assert norm_approval(12345.0) == "012345"
    assert norm_approval("a1b2") == "A1B2"
    assert norm_ref_no("20037020001") == "020037020001"


@pytest.mark.parametrize(
    ("text", "kind"),
    [("SALE", Kind.SALE), ("Thanh toán", Kind.SALE), ("THANH TOÁN", Kind.SALE),
     ("VOID", Kind.VOID), ("Hủy", Kind.VOID), ("HỦY THANH TOÁN", Kind.VOID),
     ("huy", Kind.VOID), ("Refund", Kind.REFUND), ("Hoàn tiền", Kind.REFUND), ("1", Kind.SALE),
     ("2", Kind.VOID)],
)
def test_kinds_in_both_languages(text: str, kind: Kind) -> None:
    assert parse_kind(text) is kind


def test_unknown_kind_and_status() -> None:
    with pytest.raises(ReconcileError):
        parse_kind("settlement")
    assert parse_kind("QR", {"qr": Kind.SALE}) is Kind.SALE
    assert parse_status("Thành công") is True
    assert parse_status("Từ chối") is False
    with pytest.raises(ReconcileError):
        parse_status("maybe")


def test_fold() -> None:
    assert fold("Số tiền (VNĐ)") == "so tien vnd"
    assert fold("  MÃ   Chuẩn-chi ") == "ma chuan chi"
    assert fold_header("Số tiền (VNĐ)") == "so tien"


# Arbitrary input: a value or our own error, never another exception.

_CELLS = st.one_of(
    st.text(),
    st.text(alphabet="0123456789.,- đ₫VND()+", max_size=20),
    st.integers(),
    st.floats(allow_nan=True),
    st.none(),
    st.booleans(),
)


@given(_CELLS)
def test_amount_never_raises_anything_else(cell: object) -> None:
    with contextlib.suppress(ReconcileError):
        assert isinstance(parse_amount(cell), int)


@given(st.integers(min_value=0, max_value=10**12))
def test_amount_round_trips_vietnamese_grouping(n: int) -> None:
    grouped = f"{n:,}".replace(",", ".")
    assert parse_amount(grouped) == n
    assert parse_amount(f"{n:,}") == n
    assert parse_amount(f"{n}.00") == n
    assert parse_amount(f"{grouped} đ") == n


@given(st.one_of(st.text(), st.text(alphabet="0123456789/:-T .Z+", max_size=25),
                 st.floats(), st.integers(), st.none()))
def test_date_never_raises_anything_else(cell: object) -> None:
    with contextlib.suppress(ReconcileError):
        assert isinstance(parse_datetime(cell), datetime)


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31)))
def test_date_round_trips(moment: datetime) -> None:
    moment = moment.replace(microsecond=0)
    assert parse_datetime(moment.strftime("%d/%m/%Y %H:%M:%S")) == moment
    assert parse_datetime(moment.isoformat()) == moment


@given(st.text())
def test_cards_and_headers_never_raise(text: str) -> None:
    last4 = card_last4(text)
    assert last4 == "" or (len(last4) == 4 and last4.isdigit())
    masked = mask_card(text)
    assert sum(ch in "0123456789" for ch in masked) <= 10
    assert fold(fold_header(text)) == fold_header(text)


@given(st.text(max_size=30))
def test_kind_is_a_kind_or_our_error(text: str) -> None:
    with contextlib.suppress(ReconcileError):
        assert isinstance(parse_kind(text), Kind)
