"""Validation of every field that goes into a request line.

A field that breaks a rule is refused with a ``FieldError`` naming the field and the
rule, before anything is sent. The rules come from the spec (lengths) and from the
wire (a ``|`` or ``&`` would split the command; a terminal's printer has no
diacritics). Vietnamese text can be transliterated on request instead of refused.
"""

from __future__ import annotations

import unicodedata

from .._exceptions import FieldError

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
        raise FieldError(name, f"must be text, not {type(value).__name__}", value)
    if transliterate_text:
        value = transliterate(value)
    if not value and not allow_empty:
        raise FieldError(name, "must not be empty", value)
    for ch in value:
        if ch in FORBIDDEN_CHARACTERS:
            raise FieldError(
                name,
                f"must not contain {ch!r} (the characters {FORBIDDEN_CHARACTERS} "
                "would break the request line)",
                value,
            )
        code = ord(ch)
        if code < 0x20 or code == 0x7F:
            raise FieldError(name, f"must not contain control character U+{code:04X}", value)
        if code > 0x7E:
            hint = "" if transliterate_text else " (transliteration can remove diacritics)"
            raise FieldError(
                name, f"must be plain ASCII, {ch!r} is not printable on the terminal{hint}", value
            )
    if len(value) > max_length:
        raise FieldError(
            name, f"must be at most {max_length} characters, got {len(value)}", value
        )
    return value


def check_amount(amount: object, name: str = "amount") -> int:
    """Return ``amount`` as an int if it is a positive integer of at most 10 digits."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise FieldError(
            name, f"must be a whole number of VND (an int), not {type(amount).__name__}", amount
        )
    if amount <= 0:
        raise FieldError(name, "must be greater than 0", amount)
    if amount >= 10**MAX_AMOUNT_DIGITS:
        raise FieldError(name, f"must have at most {MAX_AMOUNT_DIGITS} digits", amount)
    return amount


def check_receipt_no(receipt_no: object, name: str = "receipt_no") -> str:
    """Return a receipt number as the digits to send (``61`` and ``"000061"`` both work)."""
    if isinstance(receipt_no, bool):
        raise FieldError(name, "must be a receipt number, not a bool", receipt_no)
    if isinstance(receipt_no, int):
        if receipt_no <= 0:
            raise FieldError(name, "must be greater than 0", receipt_no)
        text = str(receipt_no)
    elif isinstance(receipt_no, str):
        text = receipt_no.strip()
        if not text.isascii() or not text.isdigit():
            raise FieldError(name, "must contain digits only", receipt_no)
        if int(text) == 0:
            raise FieldError(name, "must be greater than 0", receipt_no)
    else:
        raise FieldError(name, f"must be a number, not {type(receipt_no).__name__}", receipt_no)
    if len(text) > MAX_FIELD_LENGTH:
        raise FieldError(name, f"must be at most {MAX_FIELD_LENGTH} digits", receipt_no)
    return text
