"""Card numbers are shown and stored masked only, whatever key they come under.

PCI DSS allows at most the first 6 and last 4 digits of a PAN to be visible. Real
terminals already mask (``9704 XXXX XXXX 6163``, ``4720XXXXXXXX5184``); if one ever
sends more, under ``cardNo`` or anywhere else, it is hidden and the caller is told.

The rule, applied to every key and every value of a reply (top level or nested, text
or number), the same in the raw bytes (``mask_card_numbers``) and in the parsed
``Transaction`` (``mask_text`` on each field):

1. **Card fields** (``cardNo``, ``pan``, ``cardNumber``, ``track2``; any case, padded
   or not): every digit past the first 6 and before the last 4 is hidden, Luhn-valid
   or not (``mask_pan``). The field is a card number by definition.
2. **Identifier fields** (``requestId``, ``clientId``, ``mid``, ``tid``, ``refNo``,
   ``time``, ``STAN``, ``posSerial``, ``emvAID``, ``emvTC``, ``batchNo``,
   ``receiptNo``, ``approvalCode``; any case, padded or not), when their value is a
   plain text or number, are never touched. A 14-digit ``time`` passes the Luhn check
   one time in ten, and so can a 15-digit MID or an all-decimal 16-digit TC: masking
   them would corrupt one receipt in ten, break reconciliation (refNo, approvalCode,
   receiptNo) and, for requestId/clientId (our own ids echoed back), the matching of
   a reply to its request. No terminal puts a card number there.
3. **Everywhere else**, a card number is a run of 13 to 19 ASCII digits, possibly
   grouped by single spaces or dashes (``4111 1111 1111 1111``), that

   - is maximal: no digit, nor a separator and a digit, right before or after it
     (so a 24-digit posSerial-like run is not 19-digit card numbers inside it);
   - does not start with ``0``: no payment card does (ISO/IEC 7812 issues major
     industry identifier 0 to no card issuer), while zero-padded MIDs, AIDs and
     counters do; and
   - passes the Luhn check, which refuses nine random digit runs in ten.

   Such a run keeps its first 6 and last 4 digits and its separators; the rest
   become ``X``. A table of card prefixes (IINs) is deliberately not used: a card
   missed because its range is new (or domestic, like Napas ``9704``) is a leak,
   while masking a Luhn-valid 13-19-digit number in free text costs nothing.

Digits written as JSON ``\\u`` escapes are seen in the parsed transaction (the
parser decodes them) but not in the raw bytes, which are masked as sent.
"""

from __future__ import annotations

import json
import re

__all__ = [
    "CARD_KEYS",
    "IDENTIFIER_KEYS",
    "card_last4",
    "field_kind",
    "luhn_valid",
    "mask_card_numbers",
    "mask_pan",
    "mask_text",
]

_VISIBLE_HEAD = 6
_VISIBLE_TAIL = 4
MIN_PAN_DIGITS = 13
MAX_PAN_DIGITS = 19

CARD_KEYS = frozenset({"cardno", "pan", "cardnumber", "track2"})
"""Keys (lower case, unpadded) whose value is a card number by definition (rule 1)."""
IDENTIFIER_KEYS = frozenset({
    "requestid", "clientid", "mid", "tid", "refno", "time", "stan", "posserial",
    "emvaid", "emvtc", "batchno", "receiptno", "approvalcode",
})
"""Keys (lower case, unpadded) whose plain value is never masked (rule 2)."""

_CARD_PATTERN = "|".join(sorted(CARD_KEYS))
_ID_PATTERN = "|".join(sorted(IDENTIFIER_KEYS))
# A JSON string, or a number, as the value right after a key.
_PLAIN_VALUE = r'("(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*)'
_CARD_FIELD = re.compile(rf'"\s*(?:{_CARD_PATTERN})\s*"\s*:\s*{_PLAIN_VALUE}', re.IGNORECASE)
_ID_FIELD = re.compile(rf'"\s*(?:{_ID_PATTERN})\s*"\s*:\s*{_PLAIN_VALUE}', re.IGNORECASE)
# Candidates are found in two steps: a run of 13+ digits and separators of any count
# (one cheap regex: the exact single-separator pattern with look-arounds is 4x slower
# and this runs on every reply), then its single-separator sub-runs, checked in Python.
_LONG_RUN = re.compile(r"[0-9][0-9 -]{11,}[0-9]")
_SUB_RUN = re.compile(r"[0-9](?:[ -]?[0-9])*")
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def field_kind(key: str) -> str:
    """``"card"``, ``"identifier"`` or ``"other"``: which masking rule a key gets."""
    name = key.strip().lower()
    if name in CARD_KEYS:
        return "card"
    if name in IDENTIFIER_KEYS:
        return "identifier"
    return "other"


def luhn_valid(digits: str) -> bool:
    """True if ``digits`` (ASCII digits only) passes the Luhn (mod 10) check."""
    if not digits or not (digits.isascii() and digits.isdigit()):
        return False
    total = sum(ord(ch) - 48 for ch in digits[-1::-2])
    total += sum(_DOUBLED[ord(ch) - 48] for ch in digits[-2::-2])
    return total % 10 == 0


def mask_pan(card_no: str) -> tuple[str, bool]:
    """Return ``card_no`` with at most the first 6 and last 4 digits visible.

    The second value is True when digits had to be hidden, i.e. the terminal sent
    more than a PCI-compliant masked number. Layout (spaces, ``X`` or ``*``) is kept.
    """
    if len(card_no) <= _VISIBLE_HEAD + _VISIBLE_TAIL:
        return card_no, False
    if card_no.isascii():  # the usual case, counted in C: 4x faster than the loop below
        ascii_digits = len(card_no) - len(card_no.encode().translate(None, b"0123456789"))
        if ascii_digits <= _VISIBLE_HEAD + _VISIBLE_TAIL:
            return card_no, False
    digit_positions = [i for i, ch in enumerate(card_no) if ch.isdigit()]
    if len(digit_positions) <= _VISIBLE_HEAD + _VISIBLE_TAIL:
        return card_no, False
    hide = digit_positions[_VISIBLE_HEAD:-_VISIBLE_TAIL]
    chars = list(card_no)
    for i in hide:
        chars[i] = "X"
    return "".join(chars), True


def card_last4(card_no: str | None) -> str | None:
    """The last four digits of a (masked) card number, or None if it has fewer."""
    if not card_no:
        return None
    # ASCII digits only: "²" and other Unicode digits are not card digits.
    digits = [ch for ch in card_no if "0" <= ch <= "9"]
    last = card_no.rstrip()[-1:]
    if len(digits) < 4 or not "0" <= last <= "9":
        return None
    return "".join(digits[-4:])


def _card_spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` holds card numbers by rule 3, as (start, end) spans."""
    spans: list[tuple[int, int]] = []
    for run in _LONG_RUN.finditer(text):
        for sub in _SUB_RUN.finditer(text, run.start(), run.end()):
            piece = sub.group()
            if len(piece) < MIN_PAN_DIGITS or piece[0] == "0":
                continue
            digits = piece.replace(" ", "").replace("-", "")
            if MIN_PAN_DIGITS <= len(digits) <= MAX_PAN_DIGITS and luhn_valid(digits):
                spans.append(sub.span())
    return spans


def _masked(text: str, spans: list[tuple[int, int]]) -> str:
    parts: list[str] = []
    last = 0
    for start, end in spans:
        parts.append(text[last:start])
        parts.append(mask_pan(text[start:end])[0])
        last = end
    parts.append(text[last:])
    return "".join(parts)


def mask_text(text: str) -> tuple[str, bool]:
    """Hide every card number found by rule 3 inside ``text`` (a value or a key).

    Returns the text and whether anything was hidden. Cheap when there is nothing to
    hide: a text shorter than 13 characters, or without a 13-character digit run, is
    returned as is after one length check or one regex search.
    """
    if len(text) < MIN_PAN_DIGITS or _LONG_RUN.search(text) is None:
        return text, False
    spans = _card_spans(text)
    if not spans:
        return text, False
    return _masked(text, spans), True


def _mask_card_field(match: re.Match[str]) -> str:
    start = match.start(1) - match.start()
    return match.group()[:start] + mask_pan(match.group(1))[0]


def _mask_json(text: str) -> str:
    """Rules 1-3 over the text of a whole reply; the result has the same length."""
    text = _CARD_FIELD.sub(_mask_card_field, text)
    if _LONG_RUN.search(text) is None:
        return text
    spans = _card_spans(text)
    if not spans:
        return text
    kept = [m.span(1) for m in _ID_FIELD.finditer(text)]
    if kept:
        spans = [
            (start, end) for start, end in spans
            if not any(k_start <= start and end <= k_end for k_start, k_end in kept)
        ]
    return _masked(text, spans)


def mask_card_numbers(raw: bytes) -> tuple[bytes, bool]:
    """Mask every card number inside a raw reply (for logs and stored raw replies).

    Returns the masked bytes (the same length, only digits turned into ``X``) and
    whether anything was hidden. Works on UTF-8 and any ASCII-compatible encoding
    byte for byte; a UTF-16/32 reply (which ``json.loads`` also accepts) is decoded,
    masked and encoded back.
    """
    if raw[:1] in (b"\xfe", b"\xff") or b"\x00" in raw[:4]:
        encoding = json.detect_encoding(raw)
        if not encoding.startswith("utf-8"):
            text = raw.decode(encoding, "replace")
            masked_text = _mask_json(text)
            if masked_text == text:
                return raw, False
            return masked_text.encode(encoding, "replace"), True
    # Latin-1 maps each byte to one character and back: every other byte is kept.
    text = raw.decode("latin-1")
    masked = _mask_json(text)
    if masked == text:
        return raw, False
    return masked.encode("latin-1"), True
