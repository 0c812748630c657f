"""Card numbers are shown and stored masked only.

PCI DSS allows at most the first 6 and last 4 digits of a PAN to be visible. Real
terminals already mask (``9704 XXXX XXXX 6163``, ``4720XXXXXXXX5184``); if one ever
sends more, ``mask_pan`` hides the excess and says that it had to.
"""

from __future__ import annotations

import re

__all__ = ["card_last4", "mask_card_numbers", "mask_pan"]

_VISIBLE_HEAD = 6
_VISIBLE_TAIL = 4
# The card number's value inside a raw JSON reply. Only this field is touched: refNo,
# MID, time and posSerial are long digit runs too and must stay readable.
_CARD_VALUE = re.compile(rb'("(?:cardNo|cardno|CardNo|pan|PAN)"\s*:\s*")([^"]*)(")')


def mask_pan(card_no: str) -> tuple[str, bool]:
    """Return ``card_no`` with at most the first 6 and last 4 digits visible.

    The second value is True when digits had to be hidden, i.e. the terminal sent
    more than a PCI-compliant masked number. Layout (spaces, ``X`` or ``*``) is kept.
    """
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
    digits = [ch for ch in card_no if ch.isdigit()]
    if len(digits) < 4 or not card_no.rstrip()[-1:].isdigit():
        return None
    return "".join(digits[-4:])


def _mask_value(match: re.Match[bytes]) -> bytes:
    masked, hidden = mask_pan(match.group(2).decode("utf-8", "replace"))
    if not hidden:
        return match.group(0)
    return match.group(1) + masked.encode("utf-8") + match.group(3)


def mask_card_numbers(raw: bytes) -> tuple[bytes, bool]:
    """Mask the card number inside a raw reply (for logs and stored raw replies).

    Returns the masked bytes and whether anything was hidden.
    """
    masked = _CARD_VALUE.sub(_mask_value, raw)
    return masked, masked != raw
