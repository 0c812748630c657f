"""The reply parser tolerates real terminals' quirks and refuses what cannot be trusted."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecrlink import RemoteProtocolError, ReplyTooLarge, RequestIdMismatch
from ecrlink.protocol import (
    LastTrans,
    Outcome,
    Result,
    Sale,
    Status,
    check_answers,
    mask_card_numbers,
    parse_reply,
)
from tests.conftest import fixture_bytes

SALE = Sale.build(123456, request_id="Request:001", client_id="UserName:Manh123")


def reply(**info: object) -> bytes:
    base: dict[str, object] = {"transType": "1", "amount": "5000", "returnCode": "00"}
    base.update(info)
    doc = {"requestId": "r", "clientId": "c", "command": "sale", "status": "DONE",
           "transInfo": base}
    return json.dumps(doc).encode()


def test_duplicate_keys_are_tolerated_and_the_last_wins() -> None:
    raw = b'{"requestId":"r","status":"DONE","command":"sale","requestId":"r2",' \
          b'"transInfo":{"amount":"10","returnCode":"00","amount":"99"}}'
    result = parse_reply(raw)
    assert result.request_id == "r2"
    assert result.transaction is not None and result.transaction.amount == 99


def test_unknown_fields_are_kept_as_text() -> None:
    result = parse_reply(reply(tipAmount=0, newField="  x  ", nested={"a": 1}))
    assert result.transaction is not None
    assert result.transaction.extra == {"tipAmount": "0", "newField": "x", "nested": '{"a": 1}'}


def test_numbers_as_numbers_or_text_with_leading_zeros() -> None:
    result = parse_reply(reply(amount=5000, receiptNo=6, batchNo="000021", returnCode=0))
    t = result.transaction
    assert t is not None
    assert (t.amount, t.receipt_no, t.batch_no, t.batch_number) == (5000, "6", "000021", 21)
    assert result.return_code == "00" and result.approved
    assert parse_reply(reply(amount="0005000")).transaction.amount == 5000  # type: ignore[union-attr]


def test_missing_optional_fields_and_trailing_spaces() -> None:
    result = parse_reply(reply(cardHolder="NGUYEN VAN A            ", tid=" 31002095 "))
    t = result.transaction
    assert t is not None
    assert t.cardholder == "NGUYEN VAN A" and t.tid == "31002095"
    assert t.card_no is None and t.time is None and t.mid is None


@pytest.mark.parametrize(
    "raw",
    [
        b'{"requestId":"r","clientId":"c","command":"sale","status":"CANCELED"}',
        b'{"status":"CANCELLED","transInfo":{}}',
        b'{"requestId":"r","status":"CANCELED","transInfo":{"transType":"1","amount":"5"}}',
    ],
)
def test_canceled_with_or_without_trans_info(raw: bytes) -> None:
    result = parse_reply(raw)
    assert result.status is Status.CANCELED
    assert result.outcome is Outcome.CANCELED and not result.approved
    assert "Cancel" in result.message("en")


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    raw = reply(transName="X").replace(b'"X"', b'"TH\xff\xfeANH"')
    result = parse_reply(raw)
    assert result.transaction is not None
    assert result.transaction.trans_name == "TH\ufffd\ufffdANH"


def test_reply_over_64k_is_refused() -> None:
    raw = reply(padding="x" * 70_000)
    with pytest.raises(ReplyTooLarge):
        parse_reply(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "not valid JSON"),
        (b'{"status":"DONE","transInfo":', "not valid JSON"),
        (b"[1,2]", "not a JSON object"),
        (b'{"status":"ERROR","message":"bad amount"}', "bad amount"),
        (b'{"status":"DONE"}', "without transInfo"),
        (b'{"status":"DONE","command":"sale","transInfo":{"amount":"5"}}', "returnCode"),
        (b'{"status":"DONE","transInfo":"x"}', "not a JSON object"),
        (b'{"status":"DONE","transInfo":{"amount":"5,000","returnCode":"00"}}', "amount"),
    ],
)
def test_untrustworthy_replies_are_remote_errors(raw: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        parse_reply(raw)


def test_unknown_return_code_is_declined_with_generic_message() -> None:
    result = parse_reply(reply(returnCode="Z9"))
    assert result.outcome is Outcome.DECLINED
    assert result.message("en") == "Not approved (code Z9)"


def test_reply_to_another_request_is_never_ours() -> None:
    result = parse_reply(fixture_bytes("sale_approved_swipe.json"))
    other = Sale.build(123456, request_id="Request:002", client_id="UserName:Manh123")
    with pytest.raises(RequestIdMismatch):
        check_answers(result, other)
    assert check_answers(result, SALE) is result


def test_reply_for_another_command_is_refused() -> None:
    result = parse_reply(fixture_bytes("sale_approved_swipe.json"))
    with pytest.raises(RemoteProtocolError, match="command"):
        check_answers(result, LastTrans(request_id="Request:001", client_id="x"))


def test_approved_amount_must_equal_requested() -> None:
    result = parse_reply(fixture_bytes("sale_approved_swipe.json"))
    wrong = Sale.build(123457, request_id="Request:001", client_id="UserName:Manh123")
    checked = check_answers(result, wrong)
    assert checked.outcome is Outcome.AMOUNT_MISMATCH and not checked.approved
    assert checked.transaction is not None and checked.transaction.amount == 123456
    assert checked.detail == "terminal approved 123456 VND but 123457 VND was requested"


def test_declined_reply_for_other_amount_is_not_a_mismatch() -> None:
    result = parse_reply(fixture_bytes("sale_declined_55.json"))
    sale = Sale.build(1, request_id="Request:001", client_id="UserName:Manh123")
    assert check_answers(result, sale).outcome is Outcome.DECLINED


def test_reply_without_request_id_takes_the_requests() -> None:
    result = parse_reply(b'{"status":"CANCELED"}')
    assert check_answers(result, SALE).request_id == "Request:001"


def test_unmasked_card_number_is_masked_on_parse_and_in_raw() -> None:
    raw = reply(cardNo="9704361234567890")
    result = parse_reply(raw)
    assert result.transaction is not None
    assert result.transaction.card_no == "970436XXXXXX7890"
    assert result.transaction.card_no_was_unmasked
    assert result.transaction.card_last4 == "7890"
    masked, hidden = mask_card_numbers(raw)
    assert hidden and b"9704361234567890" not in masked and b"970436XXXXXX7890" in masked
    # an already masked number and the other long digit fields are left alone
    fixture = fixture_bytes("sale_approved_swipe.json")
    assert mask_card_numbers(fixture) == (fixture, False)


def test_result_dict_for_unknown_says_do_not_charge_again() -> None:
    result = Result(
        command="sale", status=None, outcome=Outcome.UNKNOWN, request_id="r",
        detail="no reply within 180 s",
    )
    data = result.to_dict("en")
    assert data["outcome"] == "unknown" and data["approved"] is False
    assert data["status"] is None and data["return_code"] is None
    assert "do NOT charge again" in data["advice"]
    assert "KHÔNG" in result.to_dict("vi")["advice"]


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_give_a_result_or_a_remote_error(data: bytes) -> None:
    try:
        result = parse_reply(data)
    except RemoteProtocolError:
        return
    assert result.outcome in set(Outcome)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
known_keys = st.sampled_from(
    ["amount", "returnCode", "time", "cardNo", "receiptNo", "tid", "STAN", "status", "x"]
)


@given(
    status=st.sampled_from(["DONE", "CANCELED", "canceled", "", "BUSY"]) | st.text(max_size=5),
    info=st.dictionaries(known_keys, json_values, max_size=8),
)
def test_json_shaped_garbage_gives_a_result_or_a_remote_error(
    status: str, info: dict[str, object]
) -> None:
    raw = json.dumps({"status": status, "command": "sale", "transInfo": info}).encode()
    try:
        result = parse_reply(raw)
    except RemoteProtocolError:
        return
    if result.approved:
        assert result.return_code == "00"
