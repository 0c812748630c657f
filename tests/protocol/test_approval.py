"""One strict rule for "approved": what parse_reply refuses and what check_answers refuses."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ecrlink import RemoteProtocolError
from ecrlink._exceptions import ConflictingReply
from ecrlink.protocol import (
    LastTrans,
    Outcome,
    Request,
    Sale,
    Settle,
    Void,
    approval_conflicts,
    check_answers,
    parse_reply,
    return_code_text,
)
from tests.conftest import fixture_bytes

SALE = Sale.build(123456, request_id="Request:001", client_id="UserName:Manh123")
SALE_DOC: dict[str, Any] = json.loads(fixture_bytes("sale_approved_swipe.json"))


def sale_reply(*, drop: tuple[str, ...] = (), top: dict[str, Any] | None = None,
               **info: Any) -> bytes:
    """The approved swipe sale fixture with some transInfo values changed or dropped."""
    doc = copy.deepcopy(SALE_DOC)
    for key in drop:
        doc.pop(key, None)
        doc["transInfo"].pop(key, None)
    doc["transInfo"].update(info)
    doc.update(top or {})
    return json.dumps(doc, ensure_ascii=False).encode()


# --- the return code: parse_reply's own classification -----------------------------


@pytest.mark.parametrize(
    "value",
    [False, True, 0.0, -0.0, 0.5, 1e-300, "0", "000", "0.0", "-0", "0 0", [], ["00"],
     {"code": "00"}, 55.0, "5 5", "x" * 50, "9" * 5000, 10**30, -5, "٠٠", "０", "00\u0000"],
)
def test_a_return_code_that_is_not_a_code_is_refused(value: object) -> None:
    with pytest.raises(RemoteProtocolError, match="returnCode"):
        parse_reply(sale_reply(returnCode=value))


@pytest.mark.parametrize("value", ["00", " 00", "00   ", 0])
def test_approval_is_the_text_00_or_the_integer_0(value: object) -> None:
    result = check_answers(parse_reply(sale_reply(returnCode=value)), SALE)
    assert result.outcome is Outcome.APPROVED and result.return_code == "00"


@pytest.mark.parametrize(
    ("value", "code"), [("55", "55"), (55, "55"), ("5", "05"), (5, "05"), ("Z9", "Z9"),
                        ("A", "A"), ("91 ", "91")],
)
def test_declines_keep_their_code(value: object, code: str) -> None:
    result = parse_reply(sale_reply(returnCode=value, transStatus="DECLINE"))
    assert result.outcome is Outcome.DECLINED and result.return_code == code


def test_return_code_text_directly() -> None:
    assert return_code_text(None) is None and return_code_text("  ") is None
    assert return_code_text("00") == "00" and return_code_text(0) == "00"
    with pytest.raises(RemoteProtocolError) as caught:
        return_code_text(False, b"raw bytes")
    assert caught.value.raw == b"raw bytes"


def test_a_card_number_in_the_return_code_is_not_repeated_in_the_error() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_reply(sale_reply(returnCode="4111111111111111"))
    assert "4111111111111111" not in str(caught.value)


# --- a reply that says 00 but is not a clean approval: ConflictingReply -------------


CONFLICTS: dict[str, tuple[bytes, str]] = {
    "transStatus DECLINE beside 00": (sale_reply(transStatus="DECLINE"), "transStatus"),
    "transStatus lower case": (sale_reply(transStatus="approve"), "transStatus"),
    "a void's transType on a sale": (sale_reply(transType="2"), "transType"),
    "a settlement's transType as a number": (sale_reply(transType=3), "transType"),
    "another register's clientId": (sale_reply(top={"clientId": "QUAY2"}), "clientId"),
    "another clientId inside transInfo": (sale_reply(clientId="QUAY2"), "transInfo.clientId"),
    "no top-level requestId, another one inside": (
        sale_reply(drop=("requestId",), requestId="Request:002"), "transInfo.requestId",
    ),
    "only a returnCode and an amount": (
        json.dumps({"status": "DONE", "command": "sale",
                    "transInfo": {"returnCode": "00", "amount": "123456"}}).encode(),
        "none of approvalCode",
    ),
    "a sale approval with no amount": (sale_reply(drop=("amount",)), "no amount"),
    "an amount of blank text": (sale_reply(amount="  "), "no amount"),
    "no identifier at all": (
        sale_reply(drop=("approvalCode", "refNo", "receiptNo", "STAN")), "none of",
    ),
}


@pytest.mark.parametrize("name", sorted(CONFLICTS))
def test_a_reply_that_says_00_but_conflicts_is_refused(name: str) -> None:
    raw, reason = CONFLICTS[name]
    result = parse_reply(raw)
    assert result.outcome is Outcome.APPROVED  # what the return code alone says
    with pytest.raises(ConflictingReply, match=reason) as caught:
        check_answers(result, SALE)
    assert isinstance(caught.value, RemoteProtocolError)  # leaves a payment in doubt
    assert caught.value.raw == raw
    assert any(reason in r for r in caught.value.reasons)
    assert approval_conflicts(result, SALE) == list(caught.value.reasons)


def test_every_reason_is_named_at_once() -> None:
    raw = sale_reply(transStatus="DECLINE", transType="2", top={"clientId": "QUAY2"},
                     drop=("amount",))
    reasons = approval_conflicts(parse_reply(raw), SALE)
    assert len(reasons) == 4
    assert [r.split()[0] for r in reasons] == ["clientId", "transStatus", "transType",
                                               "transInfo"]


def test_another_amount_is_not_a_conflict() -> None:
    # It is a charge, reported as its own outcome by check_answers, not a doubt.
    other = Sale.build(5000, request_id="Request:001", client_id="UserName:Manh123")
    result = parse_reply(sale_reply())
    assert approval_conflicts(result, other) == []


def test_a_declined_reply_is_not_held_to_the_approval_rule() -> None:
    raw = sale_reply(returnCode="55", transStatus="DECLINE", drop=("amount",))
    assert check_answers(parse_reply(raw), SALE).outcome is Outcome.DECLINED


def _doc_reply(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def test_last_trans_carries_the_original_transactions_ids_inside() -> None:
    doc = json.loads(fixture_bytes("last_trans_chip.json"))
    doc["transInfo"].update(requestId="older-sale", clientId="QUAY2")
    last = LastTrans(request_id="Request:001", client_id="Manh123")
    result = check_answers(parse_reply(_doc_reply(doc)), last)
    assert result.approved and result.transaction is not None
    assert result.transaction.request_id == "older-sale"
    # ... but the top-level ids are the asking request's own
    doc["clientId"] = "QUAY2"
    with pytest.raises(ConflictingReply, match="clientId"):
        check_answers(parse_reply(_doc_reply(doc)), last)


@pytest.mark.parametrize(("trans_type", "ok"), [("1", True), ("2", True), ("3", False)])
def test_last_trans_shows_a_sale_or_a_void(trans_type: str, ok: bool) -> None:
    doc = json.loads(fixture_bytes("last_trans_chip.json"))
    doc["transInfo"]["transType"] = trans_type
    last = LastTrans(request_id="Request:001", client_id="Manh123")
    result = parse_reply(_doc_reply(doc))
    assert (approval_conflicts(result, last) == []) is ok


def test_a_void_needs_an_identifier_and_its_own_trans_type() -> None:
    void = Void(request_id="123", client_id="456", receipt_no="61")
    doc = json.loads(fixture_bytes("void_serial.json"))
    for key in ("approvalCode", "refNo", "receiptNo", "STAN", "amount"):
        del doc["transInfo"][key]
    assert approval_conflicts(parse_reply(_doc_reply(doc)), void) == [
        "transInfo has none of approvalCode, refNo, receiptNo, STAN",
    ]
    doc = json.loads(fixture_bytes("void_serial.json"))
    doc["transInfo"]["transType"] = "1"
    with pytest.raises(ConflictingReply, match="transType"):
        check_answers(parse_reply(_doc_reply(doc)), void)


def test_a_settlement_without_return_code_needs_approve_and_its_batch() -> None:
    settle = Settle(request_id="123", client_id="456")
    doc = json.loads(fixture_bytes("settle_serial.json"))
    assert check_answers(parse_reply(_doc_reply(doc)), settle).approved
    del doc["transInfo"]["batchNo"]
    with pytest.raises(ConflictingReply, match="batchNo"):
        check_answers(parse_reply(_doc_reply(doc)), settle)
    doc = json.loads(fixture_bytes("settle_serial.json"))
    del doc["transInfo"]["transStatus"]
    with pytest.raises(RemoteProtocolError, match="returnCode"):
        parse_reply(_doc_reply(doc))  # no code and no APPROVE: nothing says approved


@pytest.mark.parametrize(
    "request_",
    [SALE, Void(request_id="Request:001", client_id="UserName:Manh123", receipt_no="6"),
     Settle(request_id="Request:001", client_id="UserName:Manh123"),
     LastTrans(request_id="Request:001", client_id="UserName:Manh123")],
)
def test_conflicts_never_raise_for_any_command(request_: Request) -> None:
    for raw in [sale_reply(), *(raw for raw, _ in CONFLICTS.values())]:
        assert isinstance(approval_conflicts(parse_reply(raw), request_), list)


def test_a_decline_is_believed_only_when_it_is_ours_and_consistent() -> None:
    from ecrlink.protocol.approval import decline_conflicts

    raw = fixture_bytes("sale_declined_55.json")
    mine = Sale.build(690000, request_id="Request:001", client_id="UserName:Manh123")
    assert decline_conflicts(parse_reply(raw), mine) == []
    approve = parse_reply(raw.replace(b'"DECLINE"', b'"APPROVE"'))
    assert decline_conflicts(approve, mine) == ["transStatus is 'APPROVE' beside returnCode '55'"]
    theirs = Sale.build(690000, request_id="Request:001", client_id="QUAY9")
    assert decline_conflicts(parse_reply(raw), theirs) == [
        "clientId is 'UserName:Manh123', not ours"]
    with pytest.raises(ConflictingReply, match="says declined"):
        check_answers(approve, mine)
