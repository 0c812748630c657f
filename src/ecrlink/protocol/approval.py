"""What "approved" means, written once: the strict rule every approval must meet.

A payment is only ever reported approved if the reply proves it cleanly; anything
less is not a decline either (the card may have been charged) but a reply that cannot
be trusted, which the client resolves like a lost reply (``last trans``, in doubt).

**The return code** (``transInfo.returnCode``, read by ``return_code_text`` when
``parse_reply`` classifies a DONE reply):

- approval is the JSON text ``"00"`` (surrounding spaces stripped, as from every text
  field: serial firmware pads fields), or the JSON integer ``0``, which numeric
  firmware sends and which ``json.loads`` cannot confuse with anything else;
- never a boolean (``false``), a float (``0.0``, ``-0.0``, ``0e5``), a shorter or
  longer run of zeros (``"0"``, ``"000"``), nor a nested value: each of these *reads*
  as zero only through a conversion (``str(int(False))`` is ``"0"``, which zero-padding
  turns into ``"00"``), and a conversion is a guess. They are refused outright
  (``RemoteProtocolError``), not read as declines: a decline the terminal did not say
  could make the cashier charge a card twice;
- a decline is any other code of one to three printable ASCII letters or digits (a
  single digit is padded: ``"5"`` and ``5`` are ``"05"``), or an integer 1-99; any
  other value (``true``, ``55.0``, ``"5 5"``, a 4,000-digit string) is refused.

**A clean approval** of a request (``approval_conflicts`` lists what is missing):

- ``status`` is DONE and the return code is ``"00"``; a settlement may instead carry
  no returnCode at all and ``transStatus`` APPROVE (the document's settlement sample);
- ``transStatus``, when present, is exactly ``APPROVE``;
- ``transType``, when present, is the command's (sale ``1``, void ``2``, settle ``3``;
  ``last trans`` shows a sale or a void: ``1`` or ``2``), and ``command``, when
  present, is the request's;
- the requestId and clientId are ours wherever the reply carries them: at the top
  level, and inside ``transInfo`` too, except for ``last trans``, whose ``transInfo``
  legitimately repeats the *original* transaction's ids (the client's recovery
  compares them with the payment in doubt);
- ``transInfo`` identifies the transaction: a sale or ``last trans`` has an amount
  and at least one of approvalCode, refNo, receiptNo, STAN; a void has at least one
  of those four; a settlement has its batchNo. A reply with only a returnCode and an
  amount proves nothing.

**A clean decline** is believed only if it is ours and says so consistently: no
``transStatus`` APPROVE beside a code other than ``00`` (that may be an approval),
and our requestId and clientId wherever it carries them (``decline_conflicts``). A
decline that fails this is in doubt too: believing a decline that was not ours, or
that was an approval, makes the cashier charge the card again.

An approval for *another amount* than requested is not a conflict here: it is a
charge, reported as its own outcome by ``check_answers``. A sale approval with *no*
amount is a conflict: nobody can say what was charged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._exceptions import RemoteProtocolError
from .cards import mask_text
from .requests import Command, LastTrans, Request, Sale, Settle

if TYPE_CHECKING:
    from .replies import Result

__all__ = [
    "APPROVED_CODE",
    "TRANS_TYPES",
    "approval_conflicts",
    "decline_conflicts",
    "return_code_text",
]

APPROVED_CODE = "00"
"""The one return code that means approved."""

TRANS_TYPES: dict[Command, frozenset[str]] = {
    Command.SALE: frozenset({"1"}),
    Command.VOID: frozenset({"2"}),
    Command.SETTLE: frozenset({"3"}),
    Command.LAST_TRANS: frozenset({"1", "2"}),
}
"""The ``transType`` values an approval of each command may carry."""

_MAX_CODE_CHARS = 3
_IDENTIFIERS = ("approvalCode", "refNo", "receiptNo", "STAN")


def return_code_text(value: object, raw: bytes = b"") -> str | None:
    """Read a DONE reply's ``returnCode`` value as the rule above says.

    Returns ``"00"`` for an approval, another code for a decline, None when absent
    (JSON null or blank text). Raises ``RemoteProtocolError`` (carrying ``raw``) for a
    value that is not a return code, or only looks like ``00`` after a conversion.
    """
    if type(value) is str and value == APPROVED_CODE:  # the common case, first
        return APPROVED_CODE
    if value is None:
        return None
    if type(value) is str:
        text = value.strip()
        if not text:
            return None
        if text == APPROVED_CODE:
            return APPROVED_CODE
        if len(text) <= _MAX_CODE_CHARS and text.isascii() and text.isalnum():
            if text.isdigit() and not text.strip("0"):
                raise RemoteProtocolError(
                    f"returnCode {text!r} is not '00': refused rather than read as approved",
                    raw,
                )
            return text.zfill(2) if text.isdigit() else text
        shown = mask_text(text)[0][:20]
        raise RemoteProtocolError(f"returnCode is not a return code: {shown!r}", raw)
    if type(value) is int:  # not bool: type() is exact
        if value == 0:
            return APPROVED_CODE
        if 0 < value < 100:
            return f"{value:02d}"
        shown = mask_text(str(value))[0][:20]
        raise RemoteProtocolError(f"returnCode {shown} is not a return code", raw)
    # bool, float, list, object: never a code, and never silently a zero.
    if isinstance(value, bool):
        shown = "true" if value else "false"
    elif isinstance(value, float):
        shown = repr(value)
    else:
        shown = f"a JSON {'array' if isinstance(value, list) else 'object'}"
    raise RemoteProtocolError(f"returnCode is not a return code: {shown}", raw)


def approval_conflicts(result: Result, request: Request) -> list[str]:
    """Why ``result`` is not a clean approval of ``request``; empty if it is one.

    Pure and cheap: it reads the parsed reply only. ``check_answers`` raises
    ``ConflictingReply`` with these reasons when a reply that ``parse_reply`` classed
    as approved has any. An amount other than the requested one is deliberately not
    listed (see the module docstring).
    """
    reasons: list[str] = []
    command = request.command
    if result.status != "DONE":
        reasons.append(f"status is {result.status or 'missing'}, not DONE")
    if result.command and result.command != command.value:
        reasons.append(f"command is {result.command[:20]!r}, not {command.value!r}")
    t = result.transaction
    code = result.return_code
    if code != APPROVED_CODE and not (
        code is None and isinstance(request, Settle)
        and t is not None and t.trans_status == "APPROVE"
    ):
        reasons.append(f"returnCode is {code!r}, not '00'")
    reasons += _id_conflicts(result, request)
    if t is None:
        reasons.append("no transInfo")
        return reasons
    if t.trans_status is not None and t.trans_status != "APPROVE":
        reasons.append(f"transStatus is {t.trans_status[:20]!r}, not 'APPROVE'")
    allowed = TRANS_TYPES[command]
    if t.trans_type is not None and t.trans_type not in allowed:
        reasons.append(
            f"transType is {t.trans_type[:20]!r}, not {' or '.join(sorted(allowed))} "
            f"({command.value})"
        )
    if isinstance(request, Settle):
        if t.batch_no is None:
            reasons.append("transInfo has no batchNo")
        return reasons
    if isinstance(request, Sale | LastTrans) and t.amount is None:
        reasons.append("transInfo has no amount")
    if t.approval_code is None and t.ref_no is None and t.receipt_no is None and t.stan is None:
        reasons.append(f"transInfo has none of {', '.join(_IDENTIFIERS)}")
    return reasons


def decline_conflicts(result: Result, request: Request) -> list[str]:
    """Why a reply that ``parse_reply`` classed as declined cannot be believed; empty if
    it can (see the module docstring)."""
    reasons = _id_conflicts(result, request)
    t = result.transaction
    if t is not None and t.trans_status == "APPROVE":
        reasons.append(f"transStatus is 'APPROVE' beside returnCode {result.return_code!r}")
    return reasons


def _id_conflicts(result: Result, request: Request) -> list[str]:
    """Our requestId and clientId, wherever the reply carries them."""
    reasons: list[str] = []
    if result.request_id is not None and result.request_id != request.request_id:
        reasons.append(f"requestId is {result.request_id[:30]!r}, not ours")
    if result.client_id is not None and result.client_id != request.client_id:
        reasons.append(f"clientId is {result.client_id[:30]!r}, not ours")
    t = result.transaction
    if t is not None and not isinstance(request, LastTrans):
        if t.request_id is not None and t.request_id != request.request_id:
            reasons.append(f"transInfo.requestId is {t.request_id[:30]!r}, not ours")
        if t.client_id is not None and t.client_id != request.client_id:
            reasons.append(f"transInfo.clientId is {t.client_id[:30]!r}, not ours")
    return reasons
