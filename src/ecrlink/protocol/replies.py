"""Parse a terminal's JSON reply into a typed ``Result``.

The parser is tolerant where real terminals differ (duplicate keys, unknown extra
fields, missing optional fields, trailing spaces, numbers as text with or without
leading zeros, CANCELED with or without ``transInfo``, bytes that are not UTF-8) and
strict where money is at stake: an amount that is not a number, a DONE reply with no
return code, or a reply to another request is a ``RemoteProtocolError``, never a
guess.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from .._exceptions import AmountMismatch, RemoteProtocolError, ReplyTooLarge, RequestIdMismatch
from .cards import card_last4, mask_pan
from .codes import describe
from .requests import Command, Request, Sale

__all__ = [
    "MAX_REPLY_BYTES",
    "VIETNAM_TIME",
    "Outcome",
    "Result",
    "Status",
    "Transaction",
    "check_answers",
    "parse_reply",
]

MAX_REPLY_BYTES = 64 * 1024
VIETNAM_TIME = timezone(timedelta(hours=7), "ICT")
"""Terminals print local time; Vietnam has no daylight saving."""


class Status(enum.StrEnum):
    """The reply's ``status``: did the terminal finish with the bank?"""

    DONE = "DONE"
    CANCELED = "CANCELED"


class Outcome(enum.StrEnum):
    """What the transaction came to, as a cashier needs to know it."""

    APPROVED = "approved"
    DECLINED = "declined"
    CANCELED = "canceled"
    UNKNOWN = "unknown"


# transInfo key -> Transaction attribute, for the plain text fields.
_TEXT_FIELDS: dict[str, str] = {
    "receiptNo": "receipt_no",
    "approvalCode": "approval_code",
    "refNo": "ref_no",
    "batchNo": "batch_no",
    "STAN": "stan",
    "tid": "tid",
    "mid": "mid",
    "cardType": "card_type",
    "cardHolder": "cardholder",
    "cardInput": "card_input",
    "currencyCode": "currency_code",
    "transType": "trans_type",
    "transStatus": "trans_status",
    "transName": "trans_name",
    "posSerial": "pos_serial",
    "emvAppName": "emv_app_name",
    "emvAID": "emv_aid",
    "emvTC": "emv_tc",
    "expireDate": "expire_date",
    "requestId": "request_id",
    "clientId": "client_id",
}
_SPECIAL_FIELDS = frozenset({"amount", "time", "cardNo", "returnCode"})


# Plain (not frozen) records: a frozen dataclass sets each of its 28 fields through
# object.__setattr__, which alone made parsing a reply 3.5x json.loads instead of <3x.
@dataclass(slots=True)
class Transaction:
    """The fields of ``transInfo``, with Pythonic names; identifiers stay text."""

    amount: int | None = None
    receipt_no: str | None = None
    approval_code: str | None = None
    ref_no: str | None = None
    card_no: str | None = None
    batch_no: str | None = None
    stan: str | None = None
    time: datetime | None = None
    tid: str | None = None
    mid: str | None = None
    card_type: str | None = None
    cardholder: str | None = None
    card_input: str | None = None
    currency_code: str | None = None
    trans_type: str | None = None
    trans_status: str | None = None
    trans_name: str | None = None
    pos_serial: str | None = None
    emv_app_name: str | None = None
    emv_aid: str | None = None
    emv_tc: str | None = None
    expire_date: str | None = None
    request_id: str | None = None
    """The requestId repeated inside transInfo (later firmware; for ``last trans``
    the id of the original transaction)."""
    client_id: str | None = None
    return_code: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    """Fields this version of ecrlink does not know, kept as text."""
    card_no_was_unmasked: bool = False
    """True if the terminal sent more card digits than allowed and we hid them."""

    @property
    def card_last4(self) -> str | None:
        """Last four digits of the card, for reconciliation."""
        return card_last4(self.card_no)

    @property
    def receipt_number(self) -> int | None:
        """The receipt number as an int (``"000061"`` → 61), for comparing."""
        return _as_int(self.receipt_no)

    @property
    def batch_number(self) -> int | None:
        """The batch number as an int (``"000021"`` → 21), for comparing."""
        return _as_int(self.batch_no)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields with snake_case keys."""
        return {
            "amount": self.amount,
            "receipt_no": self.receipt_no,
            "approval_code": self.approval_code,
            "ref_no": self.ref_no,
            "card_no": self.card_no,
            "card_last4": self.card_last4,
            "batch_no": self.batch_no,
            "stan": self.stan,
            "time": self.time.isoformat() if self.time else None,
            "tid": self.tid,
            "mid": self.mid,
            "card_type": self.card_type,
            "cardholder": self.cardholder,
            "card_input": self.card_input,
            "currency_code": self.currency_code,
            "trans_type": self.trans_type,
            "trans_status": self.trans_status,
            "trans_name": self.trans_name,
            "pos_serial": self.pos_serial,
            "emv_app_name": self.emv_app_name,
            "emv_aid": self.emv_aid,
            "emv_tc": self.emv_tc,
            "expire_date": self.expire_date,
        }


@dataclass(slots=True)
class Result:
    """One answer to one command: what the terminal said, or that nobody knows."""

    command: str
    status: Status | None
    outcome: Outcome
    return_code: str | None = None
    request_id: str | None = None
    client_id: str | None = None
    transaction: Transaction | None = None
    raw: bytes = b""
    detail: str | None = None
    """Why the outcome is what it is when the terminal did not say (e.g. a timeout)."""
    journal_id: int | None = None

    @property
    def approved(self) -> bool:
        """True only for a DONE reply whose return code is ``00``."""
        return self.outcome is Outcome.APPROVED

    def message(self, lang: str = "en") -> str:
        """A sentence for the cashier about the outcome, in ``lang`` (``vi``/``en``)."""
        if self.outcome is Outcome.CANCELED:
            return (
                "Giao dịch đã bị hủy trên máy POS" if lang == "vi"
                else "Canceled at the terminal"
            )
        if self.outcome is Outcome.UNKNOWN:
            return (
                "Chưa rõ kết quả thanh toán" if lang == "vi"
                else "Payment outcome unknown"
            )
        return describe(self.return_code).message(lang)

    def advice(self, lang: str = "en") -> str:
        """What the cashier should do next, in ``lang``."""
        if self.outcome is Outcome.UNKNOWN:
            return (
                "Xem hóa đơn in trên máy POS; KHÔNG thanh toán lại cho đến khi xác định "
                "được kết quả." if lang == "vi"
                else "Look at the terminal's printed receipt; do NOT charge again until "
                "the outcome is known."
            )
        if self.outcome is Outcome.CANCELED:
            return (
                "Hỏi khách có muốn thanh toán lại không." if lang == "vi"
                else "Ask the customer whether to try again."
            )
        return describe(self.return_code).advice(lang)

    def to_dict(self, lang: str = "en") -> dict[str, Any]:
        """JSON-ready data with snake_case keys (what ``--json`` prints)."""
        return {
            "command": self.command,
            "status": self.status.value if self.status else None,
            "outcome": self.outcome.value,
            "approved": self.approved,
            "return_code": self.return_code,
            "message": self.message(lang),
            "advice": self.advice(lang),
            "detail": self.detail,
            "request_id": self.request_id,
            "client_id": self.client_id,
            "journal_id": self.journal_id,
            "transaction": self.transaction.to_dict() if self.transaction else None,
        }


def _as_int(text: str | None) -> int | None:
    if text is None or not text.isdigit():
        return None
    return int(text)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return json.dumps(value, ensure_ascii=False)


def _parse_time(text: str | None) -> datetime | None:
    if text is None or len(text) != 14 or not text.isdigit():
        return None
    try:
        return datetime(
            int(text[0:4]), int(text[4:6]), int(text[6:8]),
            int(text[8:10]), int(text[10:12]), int(text[12:14]),
            tzinfo=VIETNAM_TIME,
        )
    except ValueError:
        return None


def _transaction(info: dict[str, Any], raw: bytes) -> Transaction:
    # One pass over the fields: this is the hot part of parsing a reply.
    values: dict[str, Any] = {}
    special: dict[str, str | None] = {}
    extra: dict[str, str] = {}
    text_fields = _TEXT_FIELDS
    for key, value in info.items():
        text = (value.strip() or None) if type(value) is str else _text(value)
        attr = text_fields.get(key)
        if attr is not None:
            values[attr] = text
        elif key in _SPECIAL_FIELDS:
            special[key] = text
        elif text is not None:
            extra[key] = text
    card_no = special.get("cardNo")
    if card_no is not None:
        card_no, values["card_no_was_unmasked"] = mask_pan(card_no)
    return_code = special.get("returnCode")
    if return_code is not None and len(return_code) < 2 and return_code.isdigit():
        return_code = return_code.zfill(2)
    amount = special.get("amount")
    if amount is not None and not (amount.isascii() and amount.isdigit()):
        raise RemoteProtocolError(f"transInfo.amount is not a whole number: {amount[:30]!r}", raw)
    return Transaction(
        amount=int(amount) if amount is not None else None,
        time=_parse_time(special.get("time")),
        card_no=card_no,
        return_code=return_code,
        extra=extra,
        **values,
    )


def _loads(text: str, raw: bytes) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RemoteProtocolError(f"reply is not valid JSON ({exc})", raw) from None


def _command_name(value: Any) -> str:
    text = (_text(value) or "").lower()
    if text.replace("_", " ").replace("+", " ").replace("%20", " ") == "last trans":
        return Command.LAST_TRANS.value
    return text


def parse_reply(raw: bytes) -> Result:
    """Parse one complete reply; raise ``RemoteProtocolError`` if it cannot be trusted."""
    if len(raw) > MAX_REPLY_BYTES:
        raise ReplyTooLarge(f"reply of {len(raw)} bytes exceeds {MAX_REPLY_BYTES}", raw[:256])
    # Duplicate keys: the last one wins, as in every mainstream JSON parser.
    try:
        doc = json.loads(raw)
    except UnicodeDecodeError:
        doc = _loads(raw.decode("utf-8", "replace").lstrip("\ufeff"), raw)
    except (ValueError, RecursionError):
        doc = _loads(raw.decode("utf-8", "replace").lstrip("\ufeff"), raw)
    if not isinstance(doc, dict):
        raise RemoteProtocolError("reply is not a JSON object", raw)
    status_text = (_text(doc.get("status")) or "").upper()
    if status_text in ("CANCELED", "CANCELLED"):
        status = Status.CANCELED
    elif status_text == "DONE":
        status = Status.DONE
    else:
        said = _text(doc.get("message")) or _text(doc.get("error")) or ""
        raise RemoteProtocolError(
            f"reply status {status_text or 'missing'!r} is neither DONE nor CANCELED"
            + (f": {said[:200]}" if said else ""),
            raw,
        )
    info = doc.get("transInfo")
    if info is not None and not isinstance(info, dict):
        raise RemoteProtocolError("transInfo is not a JSON object", raw)
    transaction = _transaction(info, raw) if info else None
    command = _command_name(doc.get("command"))
    return_code = transaction.return_code if transaction else None
    if status is Status.CANCELED:
        outcome = Outcome.CANCELED
    elif transaction is None:
        raise RemoteProtocolError("DONE reply without transInfo", raw)
    elif return_code == "00":
        outcome = Outcome.APPROVED
    elif return_code is None:
        # The settlement sample carries no returnCode, only transStatus APPROVE.
        if command == Command.SETTLE.value and transaction.trans_status == "APPROVE":
            outcome = Outcome.APPROVED
        else:
            raise RemoteProtocolError("DONE reply without transInfo.returnCode", raw)
    else:
        outcome = Outcome.DECLINED
    return Result(
        command=command,
        status=status,
        outcome=outcome,
        return_code=return_code,
        request_id=_text(doc.get("requestId")),
        client_id=_text(doc.get("clientId")),
        transaction=transaction,
        raw=raw,
    )


def check_answers(result: Result, request: Request) -> Result:
    """Check that ``result`` answers ``request``; raise if it cannot be its answer.

    A reply that echoes another requestId is never ours (``RequestIdMismatch``); an
    approved sale for another amount than asked is refused loudly (``AmountMismatch``).
    A reply with no requestId at all is accepted: it came on this request's exchange.
    """
    if result.request_id is not None and result.request_id != request.request_id:
        raise RequestIdMismatch(
            f"reply answers requestId {result.request_id!r}, not {request.request_id!r}",
            result.raw,
        )
    if result.command and result.command != request.command.value:
        raise RemoteProtocolError(
            f"reply is for command {result.command!r}, not {request.command.value!r}",
            result.raw,
        )
    if isinstance(request, Sale) and result.approved:
        got = result.transaction.amount if result.transaction else None
        if got != request.amount:
            raise AmountMismatch(
                f"terminal approved {got} VND but {request.amount} VND was requested",
                result.raw,
            )
    if result.request_id is None:
        return replace(result, request_id=request.request_id)
    return result
