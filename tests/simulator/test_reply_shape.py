"""Every reply the simulator sends looks like the captured ones and parses.

Each fixture is compared with a simulator reply of the same kind, for each firmware:
the same ``transInfo`` keys in the same order, and every value in a format that the
fixture's own value also has. Only requestId/clientId at the end of ``transInfo``
differ: firmware ``v201`` has them where the document's samples do (void,
settlement), ``echo`` in every reply that reached the bank.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from ecrlink import Outcome, Terminal
from ecrlink.protocol import parse_reply
from ecrlink.simulator import Simulator
from tests.conftest import fixture_bytes

FORMATS: dict[str, str] = {
    "transType": r"[123]",
    "cardNo": r"\d{4}( XXXX XXXX | XXXX XXXX XXX |X{8,11})\d{4}",
    "amount": r"[1-9]\d{0,9}",
    "STAN": r"\d{6}",
    "time": r"20\d{12}",
    "expireDate": r"XXXX|\d\d/\d\d",
    "refNo": r"\d{12}",
    "approvalCode": r"\d{6}",
    "returnCode": r"\d\d",
    "tid": r"\d{8}",
    "mid": r"\d{14,15}",
    "currencyCode": r"704",
    "batchNo": r"\d{1,6}",
    "receiptNo": r"\d{1,6}",
    "cardType": r"VISA|MASTER|JCB|DEBIT CARD",
    "cardHolder": r"[A-Z][A-Z /]+",
    "cardInput": r"[SCF]",
    "emvAppName": r"[A-Za-z][A-Za-z ]+",
    "emvAID": r"A0{5,6}\d{7,8}",
    "emvTC": r"[0-9A-F]{16}",
    "posSerial": r"[0-9A-Z]{8,24}",
    "transName": r"THANH TOÁN|HỦY THANH TOÁN|SALE",
    "transStatus": r"APPROVE|DECLINE",
    "requestId": r".{1,20}",
    "clientId": r".{1,20}",
}
INNER_IDS = ["requestId", "clientId"]


def _doc(raw: bytes) -> dict[str, Any]:
    doc = json.loads(raw.decode("utf-8"))
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module", params=["v201", "echo"])
def firmware(request: pytest.FixtureRequest) -> str:
    value = request.param
    assert isinstance(value, str)
    return value


@pytest.fixture(scope="module")
def replies(firmware: str) -> Iterator[dict[str, bytes]]:
    """One raw reply of each kind, collected from a live simulator over HTTP."""
    got: dict[str, bytes] = {}
    with Simulator(firmware=firmware) as sim, Terminal(
        sim.http_url, client_id="UserName:Manh123", journal=False
    ) as pos:
        for i in range(40):
            result = pos.sale(2000 + i * 1000, fields=["1", "2", "3", "4", "5"])
            card_input = result.transaction.card_input if result.transaction else None
            got.setdefault(f"sale_{card_input}", result.raw)
            if card_input == "C" and "void" not in got:
                receipt = result.transaction.receipt_no if result.transaction else None
                assert receipt is not None
                got["void"] = pos.void(receipt).raw
                got["last_trans_void"] = pos.last_transaction().raw
            if card_input == "C":
                got["last_trans"] = pos.last_transaction().raw
            if {"sale_S", "sale_C", "void"} <= got.keys():
                break
        for i in range(40):
            result = pos.sale(690_055 + i * 1000)
            assert result.outcome is Outcome.DECLINED
            if result.transaction and result.transaction.card_input == "S":
                got["declined_S"] = result.raw
                break
        got["void_refused"] = pos.void(999_999).raw
        got["settle"] = pos.settle().raw
    assert {"sale_S", "sale_C", "void", "declined_S", "last_trans"} <= got.keys()
    yield got


PAIRS = [
    ("sale_approved_swipe.json", "sale_S"),
    ("sale_declined_55.json", "declined_S"),
    ("sale_chip_serial.json", "sale_C"),
    ("last_trans_chip.json", "last_trans"),
    ("void_serial.json", "void"),
    ("settle_serial.json", "settle"),
]


def _has_inner_ids(firmware: str, kind: str) -> bool:
    """The document's void and settlement samples carry them; echo adds them to all."""
    return firmware == "echo" or kind in ("void", "settle")


@pytest.mark.parametrize(("fixture", "kind"), PAIRS)
def test_same_keys_same_order_same_formats(
    replies: dict[str, bytes], firmware: str, fixture: str, kind: str
) -> None:
    real = _doc(fixture_bytes(fixture))
    ours = _doc(replies[kind])
    assert list(ours) == list(real)
    assert ours["command"] == real["command"] and ours["status"] == real["status"]
    expected = [key for key in real["transInfo"] if key not in INNER_IDS]
    if _has_inner_ids(firmware, kind):
        expected += INNER_IDS
    assert list(ours["transInfo"]) == expected
    for key, value in ours["transInfo"].items():
        pattern = FORMATS[key]
        assert re.fullmatch(pattern, value), f"ours: {key}={value!r}"
        if key in real["transInfo"] and key not in ("cardHolder",):
            assert re.fullmatch(pattern, real["transInfo"][key]), f"fixture: {key}"
    if "time" in ours["transInfo"]:
        datetime.strptime(ours["transInfo"]["time"], "%Y%m%d%H%M%S")


def test_every_reply_parses_with_the_project_parser(replies: dict[str, bytes]) -> None:
    for kind, raw in replies.items():
        result = parse_reply(raw)
        assert result.transaction is not None, kind
        assert not result.transaction.card_no_was_unmasked
        assert not raw.endswith(b"\n") and b": " not in raw  # compact, like the terminal


def test_utf8_transaction_names_and_padded_holder(replies: dict[str, bytes]) -> None:
    assert b'"transName":"THANH TO\xc3\x81N"' in replies["sale_C"]
    assert "HỦY THANH TOÁN".encode() in replies["void"]
    holder = _doc(replies["sale_C"])["transInfo"]["cardHolder"]
    assert len(holder) == 26 and holder.endswith(" ")


def test_emv_fields_only_for_chip(replies: dict[str, bytes]) -> None:
    assert "emvTC" in _doc(replies["sale_C"])["transInfo"]
    assert "emvTC" not in _doc(replies["sale_S"])["transInfo"]


def test_last_trans_shows_the_transaction_with_the_new_ids_on_top(
    replies: dict[str, bytes], firmware: str
) -> None:
    last = _doc(replies["last_trans_void"])
    void = _doc(replies["void"])
    assert last["command"] == "last_trans"
    assert last["requestId"] != void["requestId"]
    if firmware == "echo":
        assert last["transInfo"] == void["transInfo"]  # the void itself, ids and all
    else:  # as the document's sample: the void, without any requestId/clientId inside
        shown = {k: v for k, v in void["transInfo"].items() if k not in INNER_IDS}
        assert last["transInfo"] == shown


def test_unknown_receipt_is_a_business_error(replies: dict[str, bytes]) -> None:
    result = parse_reply(replies["void_refused"])
    assert result.status is not None and result.status.value == "DONE"
    assert result.return_code == "12" and result.outcome is Outcome.DECLINED
