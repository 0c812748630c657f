"""The payment object of the API: its JSON, its states, its cashier texts, its input.

A payment's state follows the journal entry of its command (found by
``request_id``): ``pending``/``sent`` show as ``processing`` while the bridge runs
the command, every other journal state shows as itself. Before the journal has an
entry the payment is ``processing`` (the guards are running); a payment that never
got one, once its command ended, is ``failed``: it provably never left.

Input is checked here, with the protocol's own rules (``Sale.build``,
``check_receipt_no``): a bad body is a 422 naming the field, before anything is
written or sent.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from .._exceptions import FieldError
from ..protocol import VIETNAM_TIME, Sale, Void
from ..protocol.field_texts import field_message
from .errors import ApiError, bad_input
from .store import PaymentRow

__all__ = [
    "FINAL",
    "STATES",
    "SaleInput",
    "journal_state",
    "message",
    "new_payment_id",
    "payment_json",
    "read_resolve",
    "read_sale",
    "read_settle",
    "read_void",
    "vn_time",
]

STATES = ("processing", "approved", "declined", "canceled", "failed", "amount_mismatch",
          "in_doubt")
FINAL = frozenset({"approved", "declined", "canceled", "failed", "amount_mismatch"})

_MESSAGES: dict[str, tuple[str, str]] = {
    "processing": ("Đang xử lý: mời khách quẹt/chạm thẻ trên máy POS",
                   "Processing: the customer may be at the card reader"),
    "approved": ("Giao dịch thành công", "Approved"),
    "declined": ("Giao dịch không thành công", "Declined"),
    "canceled": ("Giao dịch đã bị hủy trên máy POS", "Canceled at the terminal"),
    "failed": ("Không trừ tiền: không gửi được tới máy POS", "Not charged: it never reached "
               "the terminal"),
    "amount_mismatch": ("SAI SỐ TIỀN: máy POS đã trừ số tiền khác yêu cầu; hủy (void) rồi "
                        "thanh toán lại", "WRONG AMOUNT charged: void it by its receipt "
                        "number, then charge again"),
    "in_doubt": ("CHƯA RÕ KẾT QUẢ: KHÔNG thanh toán lại; xem hóa đơn in trên máy POS, "
                 "quản lý sẽ xác nhận", "OUTCOME UNKNOWN: do NOT charge again; look at the "
                 "terminal's printed receipt, a manager will resolve it"),
}


def new_payment_id() -> str:
    """``pay_`` and 20 random hex digits."""
    return f"pay_{secrets.token_hex(10)}"


def journal_state(state: str) -> str:
    """The API state for a journal entry's state (``pending``/``sent``: processing)."""
    return "processing" if state in ("pending", "sent") else state


def vn_time(text: str) -> str:
    """A stored UTC time as ISO 8601 in Vietnam time (``+07:00``), to the second."""
    return datetime.fromisoformat(text).astimezone(VIETNAM_TIME).isoformat(timespec="seconds")


_SETTLED: dict[str, tuple[str, str]] = {
    "declined": ("Không trừ tiền: đã xác nhận giao dịch không thành công; khách có thể "
                 "thanh toán lại", "Not charged: confirmed not approved; the customer may "
                 "pay again"),
    "approved": ("Đã thanh toán: đã xác nhận giao dịch thành công", "Paid: confirmed "
                 "approved"),
}


def message(row: PaymentRow, lang: str) -> str:
    """The cashier's sentence for the payment's state, in ``lang``.

    A payment settled after the terminal's own answer (a manager's resolve, the bank's
    statement) keeps that answer in ``result``, but its sentence follows its state:
    the old "outcome unknown" no longer holds.
    """
    result = (row.result or {}).get(lang)
    if result and row.state in _SETTLED and result.get("outcome") != row.state:
        vi, en = _SETTLED[row.state]
        text = vi if lang == "vi" else en
        if row.state == "approved" and row.command == "sale" and row.receipt_no:
            text += f", hóa đơn số {row.receipt_no}" if lang == "vi" \
                else f", receipt {row.receipt_no}"
        return text
    if row.state in ("declined", "amount_mismatch", "canceled") and result:
        text = f"{result.get('message') or ''}. {result.get('advice') or ''}".strip(" .")
        if text:
            return text
    vi, en = _MESSAGES.get(row.state, (row.state, row.state))
    text = vi if lang == "vi" else en
    if row.state == "failed" and row.detail:
        text = f"{text} ({row.detail})"
    return text


def payment_json(row: PaymentRow, lang: str) -> dict[str, Any]:
    """The payment object of the contract."""
    return {
        "id": row.id,
        "terminal": row.terminal,
        "command": row.command,
        "amount": row.amount,
        "invoice": row.invoice,
        "reference": row.reference,
        "receipt_no": row.receipt_no,
        "state": row.state,
        "result": (row.result or {}).get(lang),
        "message": message(row, lang),
        "created_at": vn_time(row.created_at),
        "updated_at": vn_time(row.updated_at),
        "journal_id": row.journal_id,
    }


# --- input ----------------------------------------------------------------------------


def _object(body: Any, known: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_input("body", "must be a JSON object")
    unknown = sorted(set(body) - known)
    if unknown:
        name = unknown[0][:40]
        if name.isprintable() and name.strip():
            raise bad_input(name, f"unknown field (known: {', '.join(sorted(known))})")
        raise bad_input("body", f"unknown field {name!r} (known: {', '.join(sorted(known))})")
    return body


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise bad_input(name, "must be a string or null")
    return value or None


def _field_error(exc: FieldError, lang: str) -> ApiError:
    """422 in the caller's language, with the rule's code for programs."""
    return ApiError(422, "bad_input", field_message(exc, lang), field=exc.field,
                    extra={"rule_code": exc.code} if exc.code else None)


class SaleInput:
    """A checked sale body, with the request it will send (built with the protocol's
    rules; its ``request_id`` is the one the payment row records)."""

    def __init__(self, request: Sale, allow_duplicate: bool) -> None:
        self.request = request
        self.allow_duplicate = allow_duplicate


def read_sale(
    body: Any, *, request_id: str, client_id: str, transliterate: bool, lang: str = "en"
) -> SaleInput:
    """Check a sale body; 422 ``bad_input`` naming the field if it breaks a rule."""
    body = _object(body, {"amount", "invoice", "reference", "fields", "allow_duplicate"})
    if "amount" not in body:
        raise bad_input("amount", "is required (whole VND, an integer)")
    amount = body["amount"]
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise bad_input("amount", "must be a whole number of VND (a JSON integer)")
    invoice = _optional_text(body, "invoice")
    reference = _optional_text(body, "reference")
    fields: dict[int, str] = {}
    raw_fields = body.get("fields")
    if raw_fields is not None:
        if not isinstance(raw_fields, dict):
            raise bad_input("fields", "must be an object like {\"1\": \"...\", \"4\": \"...\"}")
        for key, text in raw_fields.items():
            if key not in ("1", "2", "4"):
                raise bad_input("fields", f"keys are \"1\", \"2\" and \"4\" (F3 is invoice, "
                                f"F5 reference), not {key[:10]!r}")
            if not isinstance(text, str):
                raise bad_input(f"fields.{key}", "must be a string")
            fields[int(key)] = text
    allow = body.get("allow_duplicate", False)
    if not isinstance(allow, bool):
        raise bad_input("allow_duplicate", "must be true or false")
    try:
        request = Sale.build(
            amount, request_id=request_id, client_id=client_id, invoice=invoice,
            reference=reference, fields=fields or None, transliterate=transliterate,
        )
    except FieldError as exc:
        raise _field_error(exc, lang) from None
    return SaleInput(request, allow)


def read_void(body: Any, *, request_id: str, client_id: str, lang: str = "en") -> Void:
    """Check a void body (``{"receipt_no": "000123"}``)."""
    body = _object(body, {"receipt_no"})
    receipt = body.get("receipt_no")
    if not isinstance(receipt, str | int) or isinstance(receipt, bool):
        raise bad_input("receipt_no", "is required: the receipt number of the sale to void")
    try:
        return Void(request_id=request_id, client_id=client_id,
                    receipt_no=receipt)  # type: ignore[arg-type]  # normalised by Void
    except FieldError as exc:
        raise _field_error(exc, lang) from None


def read_settle(body: Any) -> None:
    """A settlement takes an empty object."""
    _object(body, set())


def read_resolve(body: Any) -> tuple[str, str | None, str, str | None]:
    """``{"approved_receipt": "000123"}`` or ``{"not_approved": true}``, ``who``,
    optional ``note``: returns (state, receipt, who, note)."""
    body = _object(body, {"approved_receipt", "not_approved", "who", "note"})
    receipt = body.get("approved_receipt")
    not_approved = body.get("not_approved")
    if not_approved is not None and not isinstance(not_approved, bool):
        raise bad_input("not_approved", "must be true")
    if (receipt is None) == (not not_approved):
        raise bad_input("approved_receipt", "give exactly one of approved_receipt or "
                        "not_approved: true")
    if receipt is not None and (
        not isinstance(receipt, str) or not receipt.isascii() or not receipt.isdigit()
        or len(receipt) > 12
    ):
        raise bad_input("approved_receipt", "must be the receipt number printed by the "
                            "terminal (digits)")
    who = body.get("who")
    if not isinstance(who, str) or not who.strip() or len(who) > 80:
        raise bad_input("who", "is required: the name of the person resolving (1-80 "
                        "characters)")
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 500):
        raise bad_input("note", "must be a text of at most 500 characters")
    return ("approved" if receipt is not None else "declined"), receipt, who.strip(), note
