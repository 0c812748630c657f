"""Every real-terminal fixture parses to its values, and every request is reproduced."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ecrlink.protocol import (
    LastTrans,
    Outcome,
    Request,
    Sale,
    Settle,
    Status,
    Void,
    approval_conflicts,
    check_answers,
    mask_card_numbers,
    parse_reply,
    parse_request_line,
)
from tests.conftest import FIXTURES, fixture_bytes

ICT = timezone(timedelta(hours=7))

REQUESTS: dict[str, Request] = {
    "sale_approved_swipe": Sale.build(
        123456, request_id="Request:001", client_id="UserName:Manh123",
        fields=["1", "2", "3", "4", "5"],
    ),
    "sale_declined_55": Sale.build(
        690000, request_id="Request:001", client_id="UserName:Manh123",
        fields={1: "1", 2: "2", 4: "4"}, invoice="3", reference="5",
    ),
    "sale_chip_serial": Sale.build(
        2000, request_id="Request:001", client_id="UserName:Manh123",
        fields=["1", "2", "3", "4", "5"],
    ),
    "void_serial": Void(request_id="123", client_id="456", receipt_no="61"),
    "settle_serial": Settle(request_id="123", client_id="456"),
    "last_trans_chip": LastTrans(request_id="Request:001", client_id="Manh123"),
}


def test_every_request_fixture_is_covered() -> None:
    names = {p.stem for p in FIXTURES.glob("*.request")}
    assert names == set(REQUESTS)


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_request_line_is_byte_exact(name: str) -> None:
    assert REQUESTS[name].line().encode("ascii") == fixture_bytes(f"{name}.request")


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_terminal_side_parses_each_request_back(name: str) -> None:
    assert parse_request_line(fixture_bytes(f"{name}.request")) == REQUESTS[name]


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_each_reply_answers_its_own_request_cleanly(name: str) -> None:
    # Real terminal messages: the strict approval rule must accept every one of them.
    request = parse_request_line(fixture_bytes(f"{name}.request"))
    result = parse_reply(fixture_bytes(f"{name}.json"))
    checked = check_answers(result, request)
    assert checked.outcome is result.outcome
    assert checked.outcome is (
        Outcome.DECLINED if name == "sale_declined_55" else Outcome.APPROVED
    )
    if checked.approved:
        assert approval_conflicts(result, request) == []
    assert result.transaction is not None
    assert not result.transaction.card_no_was_unmasked
    assert mask_card_numbers(result.raw) == (result.raw, False)


def test_sale_approved_swipe() -> None:
    result = parse_reply(fixture_bytes("sale_approved_swipe.json"))
    assert (result.status, result.outcome, result.approved) == (
        Status.DONE, Outcome.APPROVED, True,
    )
    assert result.command == "sale"
    assert (result.request_id, result.client_id) == ("Request:001", "UserName:Manh123")
    assert result.return_code == "00"
    t = result.transaction
    assert t is not None
    assert t.amount == 123456
    assert t.card_no == "9704 XXXX XXXX 6163"
    assert t.card_last4 == "6163"
    assert (t.stan, t.ref_no, t.approval_code) == ("000010", "020037020001", "111112")
    assert t.time == datetime(2015, 6, 14, 15, 55, 43, tzinfo=ICT)
    assert (t.tid, t.mid) == ("31002095", "000000100091555")
    assert (t.batch_no, t.receipt_no, t.receipt_number) == ("3", "6", 6)
    assert (t.card_type, t.cardholder, t.card_input) == ("DEBIT CARD", "MANH/DAO XUAN", "S")
    assert t.currency_code == "704"
    assert t.trans_name == "THANH TOÁN"
    assert t.trans_status == "APPROVE"
    assert t.emv_tc is None
    assert t.request_id is None  # older firmware: not repeated inside transInfo


def test_sale_declined_55() -> None:
    result = parse_reply(fixture_bytes("sale_declined_55.json"))
    assert result.outcome is Outcome.DECLINED
    assert not result.approved
    assert result.return_code == "55"
    assert result.message("en") == "Incorrect PIN"
    assert result.message("vi") == "Sai mã PIN"
    assert result.transaction is not None
    assert result.transaction.amount == 690000
    assert result.transaction.receipt_no == "7"


def test_sale_chip_serial_with_ids_repeated_inside() -> None:
    result = parse_reply(fixture_bytes("sale_chip_serial.json"))
    t = result.transaction
    assert t is not None and result.approved
    assert t.amount == 2000
    assert t.card_no == "4720XXXXXXXX5184" and t.card_last4 == "5184"
    assert t.cardholder == "MANH/DAO XUAN"  # padding stripped
    assert (t.batch_no, t.batch_number, t.receipt_no) == ("000018", 18, "000111")
    assert (t.emv_app_name, t.emv_aid, t.emv_tc) == (
        "STB VISA PAYWAVE", "A0000000031010", "9C76E2E2E8AF76EB",
    )
    assert t.pos_serial == "171407333221017301513847"
    assert t.request_id == "Request:001" and t.client_id == "UserName:Manh123"
    assert t.tid == "00000122"  # leading zeros kept


def test_void_serial() -> None:
    result = parse_reply(fixture_bytes("void_serial.json"))
    t = result.transaction
    assert result.command == "void" and result.approved
    assert t is not None
    assert t.card_no is None and t.card_last4 is None
    assert t.receipt_no == "000061" and t.receipt_number == 61
    assert t.trans_name == "HỦY THANH TOÁN"
    assert t.trans_type == "2"
    assert t.amount == 123456


def test_settle_serial_without_return_code_is_approved() -> None:
    result = parse_reply(fixture_bytes("settle_serial.json"))
    assert result.command == "settle"
    assert result.approved and result.return_code is None
    assert result.transaction is not None
    assert result.transaction.trans_type == "3"
    assert result.transaction.amount is None


def test_last_trans_chip() -> None:
    result = parse_reply(fixture_bytes("last_trans_chip.json"))
    assert result.command == "last trans"  # sent as "last_trans"
    t = result.transaction
    assert t is not None and result.approved
    assert t.mid == "00000100238068"  # 14 digits seen: text, never a number
    assert t.expire_date == "XXXX"
    assert t.amount == 123000


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_raw_bytes_kept_and_dict_is_json_ready(name: str) -> None:
    import json

    raw = fixture_bytes(name)
    result = parse_reply(raw)
    assert result.raw == raw
    data = result.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert set(data) >= {
        "command", "status", "outcome", "approved", "return_code", "message",
        "request_id", "client_id", "transaction",
    }
    assert set(data["transaction"]) == {
        "amount", "receipt_no", "approval_code", "ref_no", "card_no", "card_last4",
        "batch_no", "stan", "time", "tid", "mid", "card_type", "cardholder", "card_input",
        "currency_code", "trans_type", "trans_status", "trans_name", "pos_serial",
        "emv_app_name", "emv_aid", "emv_tc", "expire_date",
    }
