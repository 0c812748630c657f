"""Parse a terminal's JSON reply into a typed ``Result``.

The parser is tolerant where real terminals differ (duplicate keys, unknown extra
fields, missing optional fields, trailing spaces, numbers as text with or without
leading zeros, CANCELED with or without ``transInfo``, bytes that are not UTF-8) and
strict where money is at stake: an amount that is not a number, a DONE reply with no
return code, a return code that is ``00`` only after a conversion (``false``, ``0.0``,
``"0"``), or a reply to another request is a ``RemoteProtocolError``, never a guess.
What counts as approved is written once, in ``approval``; card numbers are masked
wherever they appear, by the rule in ``cards``. Whatever the bytes, only ``EcrError``
subclasses escape ``parse_reply``, and a parsed ``Result`` never raises on access.
"""

from __future__ import annotations

import enum
import json
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from .._exceptions import ConflictingReply, RemoteProtocolError, ReplyTooLarge, RequestIdMismatch
from .approval import APPROVED_CODE, approval_conflicts, decline_conflicts, return_code_text
from .cards import card_last4, field_kind, mask_pan, mask_text
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
    AMOUNT_MISMATCH = "amount_mismatch"
    """The terminal approved, but for another amount than requested: money was taken,
    not the right amount. ``transaction.amount`` is what was charged."""


# transInfo key -> Transaction attribute, for the identifiers: kept exactly as sent
# when plain text or a number (card-masking rule 2 in ``cards``).
_ID_FIELDS: dict[str, str] = {
    "receiptNo": "receipt_no",
    "approvalCode": "approval_code",
    "refNo": "ref_no",
    "batchNo": "batch_no",
    "STAN": "stan",
    "tid": "tid",
    "mid": "mid",
    "posSerial": "pos_serial",
    "emvAID": "emv_aid",
    "emvTC": "emv_tc",
    "requestId": "request_id",
    "clientId": "client_id",
}
# ... and for the other plain text fields, where a card number is masked (rule 3).
_TEXT_FIELDS: dict[str, str] = {
    "cardType": "card_type",
    "cardHolder": "cardholder",
    "cardInput": "card_input",
    "currencyCode": "currency_code",
    "transType": "trans_type",
    "transStatus": "trans_status",
    "transName": "trans_name",
    "emvAppName": "emv_app_name",
    "expireDate": "expire_date",
}
_SPECIAL_FIELDS = frozenset({"amount", "time", "cardNo", "returnCode"})
_MAX_AMOUNT_DIGITS = 12
"""ISO 8583 amounts are 12 digits (zero-padded); more is not an amount we can trust."""
_MAX_NUMBER_DIGITS = 18
"""Receipt and batch numbers as ints: bounded, since int() refuses over 4,300 digits."""
_MIN_PAN_CHARS = 13


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
    """True if the terminal sent a full card number, under ``cardNo`` or any other key
    or inside any value, and we hid it (worth a warning: the terminal is misconfigured)."""

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
    unrecorded: str | None = None
    """Why the journal could not record this answer (disk full, ...): it is still the
    terminal's answer, and the pending entry is settled by the next recovery."""

    @property
    def approved(self) -> bool:
        """True only for a clean approval of the request (``ecrlink.protocol.approval``)."""
        return self.outcome is Outcome.APPROVED

    def message(self, lang: str = "en") -> str:
        """A sentence for the cashier about the outcome, in ``lang`` (``vi``/``en``)."""
        if self.outcome is Outcome.AMOUNT_MISMATCH:
            charged = self.transaction.amount if self.transaction else None
            return (
                f"SAI SỐ TIỀN: máy POS đã trừ {charged} VND, khác số tiền yêu cầu"
                if lang == "vi"
                else f"WRONG AMOUNT: the terminal charged {charged} VND, not the amount asked"
            )
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
        if self._not_completed:
            return (
                "Không trừ tiền: máy POS không hoàn tất giao dịch" if lang == "vi"
                else "Not charged: the terminal did not complete the payment"
            )
        # An approval without a return code (the settlement sample) is still approved.
        return describe("00" if self.approved else self.return_code).message(lang)

    @property
    def _not_completed(self) -> bool:
        """Proven not approved by recovery: the terminal gave no answer of its own."""
        return self.outcome is Outcome.DECLINED and self.status is None

    def advice(self, lang: str = "en") -> str:
        """What the cashier should do next, in ``lang``."""
        if self.outcome is Outcome.AMOUNT_MISMATCH:
            return (
                "Hủy (void) giao dịch này theo số hóa đơn POS rồi thanh toán lại đúng số tiền."
                if lang == "vi"
                else "Void this transaction by its receipt number, then charge the right amount."
            )
        if self.outcome is Outcome.UNKNOWN:
            return (
                "Xem hóa đơn in trên máy POS; KHÔNG thanh toán lại cho đến khi xác định "
                "được kết quả." if lang == "vi"
                else "Look at the terminal's printed receipt; do NOT charge again until "
                "the outcome is known."
            )
        if self.outcome is Outcome.CANCELED or self._not_completed:
            return (
                "Hỏi khách có muốn thanh toán lại không." if lang == "vi"
                else "Ask the customer whether to try again."
            )
        return describe("00" if self.approved else self.return_code).advice(lang)

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
            "unrecorded": self.unrecorded,
            "transaction": self.transaction.to_dict() if self.transaction else None,
        }


def _as_int(text: str | None) -> int | None:
    # ASCII digits and a length bound: int() refuses "²" (which isdigit() accepts) and
    # any text of more than 4,300 digits.
    if text is None or len(text) > _MAX_NUMBER_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    # Booleans and floats are spelled as JSON spells them, never converted: false is
    # not "0" and 0.0 is not "0" (a zero-padded "0" would read as approval code "00").
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)  # json.loads makes no int of more than 4,300 digits
    if isinstance(value, float):
        return repr(value)
    try:
        return json.dumps(value, ensure_ascii=False)
    except (ValueError, RecursionError):  # nesting as deep as json.loads allows
        return "[nested too deeply]"


def _id_text(value: Any) -> str | None:
    # Top-level ids are plain text in every real reply: no call to _text for them.
    return (value.strip() or None) if type(value) is str else _text(value)


def _parse_time(text: str | None) -> datetime | None:
    if text is None or len(text) != 14 or not (text.isascii() and text.isdigit()):
        return None
    if text[8:10] > "23":  # newer Pythons read hour 24 as the next midnight: not a time
        return None
    try:
        # fromisoformat in C, then our named zone: 1.7x faster than six int() calls.
        return datetime.fromisoformat(f"{text[:8]}T{text[8:]}+07:00").astimezone(VIETNAM_TIME)
    except (ValueError, OverflowError):  # no such date; or year 1 has no UTC instant
        return None


def _amount(value: Any, raw: bytes) -> int | None:
    if value is None:
        return None
    if type(value) is int and 0 <= value < 10**_MAX_AMOUNT_DIGITS:
        return value
    text = value.strip() if type(value) is str else None
    if text == "":
        return None
    if (
        text is not None and len(text) <= _MAX_AMOUNT_DIGITS
        and text.isascii() and text.isdigit()
    ):
        return int(text)
    shown = mask_text(text if text is not None else _text(value) or "")[0]
    raise RemoteProtocolError(
        f"transInfo.amount is not a whole number of at most {_MAX_AMOUNT_DIGITS} digits: "
        f"{shown[:30]!r}",
        raw,
    )


def _extra_field(key: str, value: Any, text: str) -> tuple[str, str, bool]:
    """An unknown field: its masking rule follows its name, and the name is masked too."""
    kind = field_kind(key)
    hidden = False
    if kind == "card":
        text, hidden = mask_pan(text)
    elif kind == "other" or not (type(value) is str or type(value) is int):
        text, hidden = mask_text(text)
    key, key_hidden = mask_text(key)
    return key, text, hidden or key_hidden


# Transaction is built from a list of its fields in order: a positional call costs half
# of one with 28 keywords, and this is the hot path. Slots are computed from the class,
# so adding a field to Transaction needs nothing here.
_INIT_FIELDS = [f for f in fields(Transaction) if f.init]
_SLOT = {f.name: i for i, f in enumerate(_INIT_FIELDS)}
_DEFAULTS: list[Any] = [None if f.default is MISSING else f.default for f in _INIT_FIELDS]
_FACTORIES = [
    (i, f.default_factory) for i, f in enumerate(_INIT_FIELDS) if f.default_factory is not MISSING
]
_FIELD_SLOTS = {key: _SLOT[attr] for key, attr in {**_ID_FIELDS, **_TEXT_FIELDS}.items()}
_ID_SLOTS = frozenset(_SLOT[attr] for attr in _ID_FIELDS.values())
_MASKED_SLOTS = tuple(_SLOT[attr] for attr in _TEXT_FIELDS.values())
_AMOUNT, _TIME, _CARD_NO, _RETURN_CODE, _EXTRA, _UNMASKED = (
    _SLOT[name] for name in (
        "amount", "time", "card_no", "return_code", "extra", "card_no_was_unmasked",
    )
)


def _transaction(info: dict[str, Any], raw: bytes, done: bool) -> Transaction:
    # The hot part of parsing a reply. One pass that only strips plain text values;
    # what is rare (numbers, nested values, unknown keys) and the few fields that may
    # hold a card number are dealt with after it.
    args = _DEFAULTS.copy()
    for i, factory in _FACTORIES:
        args[i] = factory()
    unusual: list[tuple[str, int | None, Any]] = []
    slots = _FIELD_SLOTS
    for key, value in info.items():
        slot = slots.get(key)
        if slot is not None and type(value) is str:
            args[slot] = value.strip() or None
        elif slot is not None or key not in _SPECIAL_FIELDS:
            unusual.append((key, slot, value))
    hidden = False
    extra: dict[str, str] = {}
    for key, slot, value in unusual:
        text = _text(value)
        if slot is None:
            if text is not None:
                key, text, hit = _extra_field(key, value, text)
                hidden = hidden or hit
                extra[key] = text
            continue
        # Only a plain text or number is an identifier: anything else is masked.
        if text is not None and (slot not in _ID_SLOTS or type(value) is not int):
            text, hit = mask_text(text)
            hidden = hidden or hit
        args[slot] = text
    for slot in _MASKED_SLOTS:
        text = args[slot]
        if text is not None and len(text) >= _MIN_PAN_CHARS:
            args[slot], hit = mask_text(text)
            hidden = hidden or hit
    card_no = info.get("cardNo")
    if card_no is not None:
        card_no, hit = mask_pan(card_no.strip() if type(card_no) is str else _text(card_no) or "")
        hidden = hidden or hit
        args[_CARD_NO] = card_no or None
    if done:
        args[_RETURN_CODE] = return_code_text(info.get("returnCode"), raw)
    else:
        # A cancel does not depend on its code: keep whatever was said, as text.
        return_code = _text(info.get("returnCode"))
        if return_code is not None:
            return_code, hit = mask_text(return_code)
            hidden = hidden or hit
        args[_RETURN_CODE] = return_code
    time_value = info.get("time")
    if type(time_value) is str:
        args[_TIME] = _parse_time(time_value.strip())
    args[_AMOUNT] = _amount(info.get("amount"), raw)
    args[_EXTRA] = extra
    args[_UNMASKED] = hidden
    return Transaction(*args)


def _loads(text: str, raw: bytes) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RemoteProtocolError(f"reply is not valid JSON ({exc})", raw) from None


_COMMAND_NAMES = {command.value: command.value for command in Command} | {
    "last_trans": Command.LAST_TRANS.value, "last+trans": Command.LAST_TRANS.value,
}


def _command_name(value: Any) -> str:
    if type(value) is str:
        known = _COMMAND_NAMES.get(value)
        if known is not None:  # as every terminal spells it: no work
            return known
    text = (_text(value) or "").lower()
    if text.replace("_", " ").replace("+", " ").replace("%20", " ") == "last trans":
        return Command.LAST_TRANS.value
    return mask_text(text)[0]


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
    status_value = doc.get("status")
    status_text = "DONE" if status_value == "DONE" else (_text(status_value) or "").upper()
    if status_text in ("CANCELED", "CANCELLED"):
        status = Status.CANCELED
    elif status_text == "DONE":
        status = Status.DONE
    else:
        said = mask_text(_text(doc.get("message")) or _text(doc.get("error")) or "")[0]
        raise RemoteProtocolError(
            f"reply status {mask_text(status_text)[0][:40] or 'missing'!r} is neither DONE "
            "nor CANCELED"
            + (f": {said[:200]}" if said else ""),
            raw,
        )
    info = doc.get("transInfo")
    if info is not None and not isinstance(info, dict):
        raise RemoteProtocolError("transInfo is not a JSON object", raw)
    transaction = _transaction(info, raw, status is Status.DONE) if info else None
    command = _command_name(doc.get("command"))
    return_code = transaction.return_code if transaction else None
    if status is Status.CANCELED:
        outcome = Outcome.CANCELED
    elif transaction is None:
        raise RemoteProtocolError("DONE reply without transInfo", raw)
    elif return_code == APPROVED_CODE:
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
        request_id=_id_text(doc.get("requestId")),
        client_id=_id_text(doc.get("clientId")),
        transaction=transaction,
        raw=raw,
    )


def check_answers(result: Result, request: Request) -> Result:
    """Check that ``result`` answers ``request``; raise if it cannot be its answer.

    A reply that echoes another requestId is never ours (``RequestIdMismatch``); an
    approved sale for another amount than asked comes back as ``Outcome.AMOUNT_MISMATCH``.
    A reply with no requestId at all is accepted: it came on this request's exchange.
    A reply that says approved but is not a clean approval of ``request`` by the rule in
    ``approval`` (a transStatus DECLINE, another register's clientId, no transaction
    identifiers...) raises ``ConflictingReply`` naming every reason.
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
    said = {Outcome.APPROVED: ("approved", approval_conflicts),
            Outcome.DECLINED: ("declined", decline_conflicts)}.get(result.outcome)
    if said is not None:
        conflicts = said[1](result, request)
        if conflicts:
            raise ConflictingReply(
                f"reply says {said[0]} but cannot be believed: " + "; ".join(conflicts),
                result.raw,
                tuple(conflicts),
            )
    if isinstance(request, Sale) and result.approved:
        got = result.transaction.amount if result.transaction else None
        if got is not None and got != request.amount:
            # Money was taken, not the right amount: its own outcome, never "approved"
            # (and never hidden behind an exception: the caller must see the charge).
            result = replace(
                result, outcome=Outcome.AMOUNT_MISMATCH,
                detail=f"terminal approved {got} VND but {request.amount} VND was requested",
            )
    if result.request_id is None:
        return replace(result, request_id=request.request_id)
    return result
