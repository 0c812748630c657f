"""Field validation: every rule names its field, and nothing forbidden reaches the wire."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecrlink import FieldError
from ecrlink.protocol import (
    LastTrans,
    Sale,
    Settle,
    Void,
    check_amount,
    check_field,
    check_receipt_no,
    parse_request_line,
    transliterate,
)
from ecrlink.protocol.fields import FORBIDDEN_CHARACTERS

IDS = {"request_id": "r1", "client_id": "c1"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hóa đơn số 5", "Hoa don so 5"),
        ("ĐẶNG THỊ Ữ", "DANG THI U"),
        ("Thanh toán tiền điện", "Thanh toan tien dien"),
        ("plain", "plain"),
    ],
)
def test_transliterate(text: str, expected: str) -> None:
    assert transliterate(text) == expected


@pytest.mark.parametrize("bad", list(FORBIDDEN_CHARACTERS))
def test_separator_characters_are_refused_with_field_name(bad: str) -> None:
    with pytest.raises(FieldError) as info:
        Sale.build(1000, invoice=f"HD{bad}1", **IDS)
    assert info.value.field == "invoice"
    assert repr(bad) in info.value.rule


def test_control_characters_are_refused() -> None:
    with pytest.raises(FieldError, match="F1: must not contain control character U\\+000A"):
        Sale.build(1000, fields=["a\nb"], **IDS)


def test_vietnamese_refused_unless_transliterated() -> None:
    with pytest.raises(FieldError) as info:
        Sale.build(1000, invoice="Hóa đơn số 5", **IDS)
    assert info.value.field == "invoice"
    assert "ASCII" in info.value.rule
    sale = Sale.build(1000, invoice="Hóa đơn số 5", transliterate=True, **IDS)
    assert sale.invoice == "Hoa don so 5"


def test_length_limit_counts_after_transliteration() -> None:
    Sale.build(1000, reference="x" * 20, **IDS)
    with pytest.raises(FieldError, match="reference: must be at most 20 characters, got 25"):
        Sale.build(1000, reference="x" * 25, **IDS)


@pytest.mark.parametrize(
    ("amount", "rule"),
    [
        (0, "greater than 0"),
        (-5, "greater than 0"),
        (10_000_000_000, "at most 10 digits"),
        (12.5, "whole number"),
        ("1000", "whole number"),
        (True, "whole number"),
    ],
)
def test_amount_rules(amount: object, rule: str) -> None:
    with pytest.raises(FieldError, match=rule) as info:
        check_amount(amount)
    assert info.value.field == "amount"


def test_amount_bounds_accepted() -> None:
    assert check_amount(1) == 1
    assert check_amount(9_999_999_999) == 9_999_999_999


@pytest.mark.parametrize("receipt", [61, "61", "000061", " 61 "])
def test_receipt_forms(receipt: object) -> None:
    assert check_receipt_no(receipt) in ("61", "000061")


@pytest.mark.parametrize("receipt", [0, -1, "6a", "", "0", 1.5, None])
def test_bad_receipts(receipt: object) -> None:
    with pytest.raises(FieldError) as info:
        check_receipt_no(receipt)
    assert info.value.field == "receipt_no"


def test_ids_must_be_non_empty_and_short() -> None:
    with pytest.raises(FieldError, match="request_id: must not be empty"):
        LastTrans(request_id="", client_id="c")
    with pytest.raises(FieldError, match="client_id: must be at most 20"):
        Settle(request_id="r", client_id="c" * 21)


def test_named_options_conflict_with_fields() -> None:
    with pytest.raises(FieldError, match="invoice: travels as F3"):
        Sale.build(1000, invoice="A", fields={3: "B"}, **IDS)
    with pytest.raises(FieldError, match=r"field numbers are 1\.\.5"):
        Sale.build(1000, fields={6: "x"}, **IDS)


def test_invoice_is_f3_and_reference_f5() -> None:
    sale = Sale.build(5000, invoice="HD42", reference="REF7", fields={1: "a"}, **IDS)
    assert sale.line() == "/ecr?rqt=r1|c1&cmd=sale|5000|a||HD42||REF7"


@given(st.text(max_size=40))
def test_check_field_returns_clean_text_or_field_error(text: str) -> None:
    try:
        cleaned = check_field("F1", text, transliterate_text=True)
    except FieldError as exc:
        assert exc.field == "F1"
        return
    assert len(cleaned) <= 20
    assert cleaned.isascii()
    assert not any(c in FORBIDDEN_CHARACTERS for c in cleaned)
    assert all(0x20 <= ord(c) < 0x7F for c in cleaned)


field_text = st.text(max_size=25)


@given(
    amount=st.one_of(st.integers(), st.floats(), st.text(max_size=5)),
    fields=st.lists(field_text, max_size=5),
    invoice=st.none() | field_text,
    reference=st.none() | field_text,
    translit=st.booleans(),
)
def test_no_forbidden_character_ever_reaches_a_request_line(
    amount: object, fields: list[str], invoice: str | None, reference: str | None,
    translit: bool,
) -> None:
    try:
        sale = Sale.build(
            amount,  # type: ignore[arg-type]
            fields=fields, invoice=invoice, reference=reference, transliterate=translit, **IDS,
        )
    except FieldError:
        return
    line = sale.line()
    assert line.isascii()
    head, _, cmd = line.partition("&cmd=")
    assert head == "/ecr?rqt=r1|c1"
    parts = cmd.split("|")
    assert len(parts) == 7  # sale, amount and exactly five fields: nothing split a field
    assert not any(c in "&=?#%" for c in cmd)
    assert parse_request_line(line) == sale


@given(st.one_of(st.integers(), st.text(max_size=25)))
def test_void_receipt_validation_is_total(receipt: int | str) -> None:
    try:
        void = Void(receipt_no=receipt, **IDS)  # type: ignore[arg-type]
    except FieldError as exc:
        assert exc.field == "receipt_no"
        return
    assert void.receipt_no.isdigit()
    assert parse_request_line(void.line()) == void
