"""Validation of every field that goes into a request line.

A field that breaks a rule is refused with a ``FieldError`` naming the field and the
rule, before anything is sent (each rule's texts, Vietnamese and English, are in
``field_texts``). The rules come from the spec (lengths) and from the
wire (a ``|`` or ``&`` would split the command; a terminal's printer has no
diacritics). Vietnamese text can be transliterated on request instead of refused.
"""

from __future__ import annotations

import unicodedata

from .field_texts import field_error

__all__ = [
    "FORBIDDEN_CHARACTERS",
    "MAX_AMOUNT_DIGITS",
    "MAX_FIELD_LENGTH",
    "check_amount",
    "check_field",
    "check_receipt_no",
    "transliterate",
]

MAX_FIELD_LENGTH = 20
MAX_AMOUNT_DIGITS = 10
FORBIDDEN_CHARACTERS = "|&=?#%"

# Letters that Unicode decomposition does not reduce to ASCII.
_EXTRA_FOLDS = str.maketrans({"đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "ø": "o", "Ø": "O"})


def transliterate(text: str) -> str:
    """Drop Vietnamese diacritics: ``"Hóa đơn số 5"`` → ``"Hoa don so 5"``.

    Only marks are removed; characters with no ASCII base are left for the
    validation to refuse, so nothing is silently lost.
    """
    decomposed = unicodedata.normalize("NFD", text.translate(_EXTRA_FOLDS))
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


def check_field(
    name: str,
    value: str,
    *,
    max_length: int = MAX_FIELD_LENGTH,
    transliterate_text: bool = False,
    allow_empty: bool = True,
) -> str:
    """Return ``value`` ready for the wire, or raise ``FieldError`` naming ``name``."""
    if not isinstance(value, str):
        raise field_error(name, "not_text", value, type=type(value).__name__)
    if transliterate_text:
        value = transliterate(value)
    if not value and not allow_empty:
        raise field_error(name, "empty", value)
    for ch in value:
        if ch in FORBIDDEN_CHARACTERS:
            raise field_error(
                name, "forbidden_character", value, char=ch, forbidden=FORBIDDEN_CHARACTERS
            )
        code = ord(ch)
        if code < 0x20 or code == 0x7F:
            raise field_error(name, "control_character", value, codepoint=code)
        if code > 0x7E:
            raise field_error(
                name, "not_ascii_transliterated" if transliterate_text else "not_ascii",
                value, char=ch,
            )
    if len(value) > max_length:
        raise field_error(name, "too_long", value, max=max_length, length=len(value))
    return value


def check_amount(amount: object, name: str = "amount") -> int:
    """Return ``amount`` as an int if it is a positive integer of at most 10 digits."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise field_error(name, "amount_not_int", amount, type=type(amount).__name__)
    if amount <= 0:
        raise field_error(name, "not_positive", amount)
    if amount >= 10**MAX_AMOUNT_DIGITS:
        raise field_error(name, "too_many_digits", amount, max=MAX_AMOUNT_DIGITS)
    return amount


def check_receipt_no(receipt_no: object, name: str = "receipt_no") -> str:
    """Return a receipt number as the digits to send (``61`` and ``"000061"`` both work)."""
    if isinstance(receipt_no, bool):
        raise field_error(name, "receipt_bool", receipt_no)
    if isinstance(receipt_no, int):
        if receipt_no <= 0:
            raise field_error(name, "not_positive", receipt_no)
        text = str(receipt_no)
    elif isinstance(receipt_no, str):
        text = receipt_no.strip()
        if not text.isascii() or not text.isdigit():
            raise field_error(name, "digits_only", receipt_no)
        if int(text) == 0:
            raise field_error(name, "not_positive", receipt_no)
    else:
        raise field_error(name, "receipt_not_number", receipt_no, type=type(receipt_no).__name__)
    if len(text) > MAX_FIELD_LENGTH:
        raise field_error(name, "too_many_digits", receipt_no, max=MAX_FIELD_LENGTH)
    return text
