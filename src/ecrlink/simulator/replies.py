"""Replies shaped like the real ones: the fixtures' keys, in the fixtures' order.

The order of ``transInfo`` follows ``tests/fixtures``: sale and ``last trans`` as
``sale_chip_serial.json`` (EMV fields only for chip cards), void as
``void_serial.json`` (no ``cardNo``), settlement as ``settle_serial.json``. Whether
the original requestId/clientId are repeated at the end of a sale's or ``last
trans``'s ``transInfo`` depends on the firmware (``inner_ids``): the document's
sale and ``last trans`` samples do not have them, its void and settlement samples
and a later firmware's sale do. JSON is compact UTF-8 (``THANH TOÁN`` as ``c3 81``),
with no trailing newline.
"""

from __future__ import annotations

import json
from typing import Any

from ..protocol import VIETNAM_TIME
from .ledger import APPROVED_CODE, Identity, TransactionRecord

__all__ = [
    "SALE_NAME",
    "VND",
    "VOID_NAME",
    "busy_body",
    "canceled_reply",
    "encode",
    "error_body",
    "nothing_to_report",
    "settle_reply",
    "transaction_reply",
    "truncate",
    "void_refused",
]

VND = "704"
SALE_NAME = "THANH TOÁN"
VOID_NAME = "HỦY THANH TOÁN"
_TRANS_TYPE = {"sale": "1", "void": "2", "settle": "3"}


def encode(doc: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as the terminal sends it."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _six(number: int | None) -> str:
    return f"{number or 0:06d}"


def _time(record: TransactionRecord) -> str:
    """``YYYYMMDDhhmmss`` in Vietnam time, as the terminal prints it."""
    return record.time.astimezone(VIETNAM_TIME).strftime("%Y%m%d%H%M%S")


def _envelope(
    request_id: str, client_id: str, command: str, status: str, info: dict[str, str] | None
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "requestId": request_id,
        "clientId": client_id,
        "command": command,
        "status": status,
    }
    if info is not None:
        doc["transInfo"] = info
    return doc


def _trans_info(
    record: TransactionRecord, identity: Identity, inner_ids: bool
) -> dict[str, str]:
    card = record.card
    assert card is not None, "only sales and voids that reached the bank have a card"
    info: dict[str, str] = {"transType": _TRANS_TYPE[record.command]}
    if record.command == "sale":
        info["cardNo"] = card.card_no
    info["amount"] = str(record.amount)
    info["STAN"] = _six(record.stan)
    info["time"] = _time(record)
    info["expireDate"] = card.expire_date
    info["refNo"] = record.ref_no or ""
    info["approvalCode"] = record.approval_code or ""
    info["returnCode"] = record.return_code or ""
    info["tid"] = identity.tid
    info["mid"] = identity.mid
    info["currencyCode"] = VND
    info["batchNo"] = _six(record.batch_no)
    info["receiptNo"] = _six(record.receipt_no)
    info["cardType"] = card.card_type
    info["cardHolder"] = card.cardholder
    info["cardInput"] = card.card_input
    if card.card_input == "C":
        info["emvAppName"] = card.emv_app_name or ""
        info["emvAID"] = card.emv_aid or ""
        info["emvTC"] = record.emv_tc or ""
    info["posSerial"] = identity.pos_serial
    info["transName"] = SALE_NAME if record.command == "sale" else VOID_NAME
    info["transStatus"] = "APPROVE" if record.return_code == APPROVED_CODE else "DECLINE"
    if inner_ids:
        info["requestId"] = record.request_id
        info["clientId"] = record.client_id
    return info


def transaction_reply(
    record: TransactionRecord,
    identity: Identity,
    *,
    request_id: str | None = None,
    client_id: str | None = None,
    command: str | None = None,
    inner_ids: bool = True,
) -> dict[str, Any]:
    """The reply to a sale or void that reached the bank, or to ``last trans``.

    For ``last trans`` pass the asking request's ids and ``command="last_trans"``.
    ``inner_ids`` repeats the original transaction's requestId/clientId at the end
    of ``transInfo`` (for ``last trans``: those of the transaction it shows).
    """
    return _envelope(
        request_id if request_id is not None else record.request_id,
        client_id if client_id is not None else record.client_id,
        command or record.command,
        "DONE",
        _trans_info(record, identity, inner_ids),
    )


def void_refused(record: TransactionRecord, identity: Identity) -> dict[str, Any]:
    """``DONE`` with return code 12: the receipt cannot be voided; nothing changed."""
    info = {
        "transType": _TRANS_TYPE["void"],
        "time": _time(record),
        "returnCode": record.return_code or "",
        "tid": identity.tid,
        "mid": identity.mid,
        "currencyCode": VND,
        "batchNo": _six(record.batch_no),
        "receiptNo": _six(record.receipt_no),
        "posSerial": identity.pos_serial,
        "transName": VOID_NAME,
        "transStatus": "DECLINE",
        "requestId": record.request_id,
        "clientId": record.client_id,
    }
    return _envelope(record.request_id, record.client_id, "void", "DONE", info)


def settle_reply(record: TransactionRecord) -> dict[str, Any]:
    """The settlement reply, keys as ``settle_serial.json``; batchNo is the closed batch."""
    info = {
        "transType": _TRANS_TYPE["settle"],
        "STAN": _six(record.stan),
        "batchNo": _six(record.batch_no),
        "receiptNo": _six(None),
        "transStatus": "APPROVE",
        "requestId": record.request_id,
        "clientId": record.client_id,
    }
    return _envelope(record.request_id, record.client_id, "settle", "DONE", info)


def canceled_reply(request_id: str, client_id: str, command: str = "sale") -> dict[str, Any]:
    """``status: CANCELED`` without ``transInfo`` (the spec gives no example; both occur)."""
    return _envelope(request_id, client_id, command, "CANCELED", None)


def nothing_to_report(request_id: str, client_id: str, identity: Identity) -> dict[str, Any]:
    """``last trans`` on a terminal with no successful transaction: code 25, no record."""
    info = {
        "returnCode": "25",
        "tid": identity.tid,
        "mid": identity.mid,
        "posSerial": identity.pos_serial,
        "transStatus": "DECLINE",
    }
    return _envelope(request_id, client_id, "last_trans", "DONE", info)


def error_body(message: str) -> bytes:
    """What a malformed request gets (HTTP 400 body, or the serial reply)."""
    return encode({"status": "ERROR", "message": message})


def busy_body() -> bytes:
    """The HTTP 503 body for a request while another one is in progress."""
    return encode({"status": "BUSY", "message": "terminal is busy with another transaction"})


def truncate(body: bytes) -> bytes:
    """About the first half of ``body``: never a complete JSON object."""
    return body[: max(1, len(body) // 2)]
