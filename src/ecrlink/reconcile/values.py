"""Cell values as banks and cash registers write them, turned into ours.

This module is the definition of what a cell means: the frame reader
(``frames.py``) takes vectorised short cuts only for forms on which it provably agrees
with these functions, and hands everything else back to them.

Every parser accepts any object and returns a value or raises ``ReconcileError``
(never another exception); the caller adds the file, row and column.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from datetime import UTC, date, datetime, time, timedelta, timezone

from .._exceptions import ReconcileError
from ..protocol import VIETNAM_TIME

__all__ = [
    "MAX_AMOUNT",
    "STRIP_CHARS",
    "VN_TZ",
    "Kind",
    "card_last4",
    "cell_text",
    "fold",
    "mask_card",
    "norm_approval",
    "norm_invoice",
    "norm_ref_no",
    "parse_amount",
    "parse_datetime",
    "parse_kind",
    "parse_status",
    "parse_time_of_day",
]

VN_TZ = VIETNAM_TIME
"""Terminals and bank statements write Vietnam local time; we compare naive local times."""

MAX_AMOUNT = 999_999_999_999_999
"""No card payment is a quadrillion VND: a longer number is a wrong column or a typo."""

STRIP_CHARS = " \t\r\n\v\f\xa0\u2007\u202f\u3000\ufeff"
"""What is stripped around a cell: an explicit set, so both readers strip the same."""

_MIN_YEAR = 1900
_MAX_YEAR = 2200


class Kind(enum.StrEnum):
    """What a statement or register row is."""

    SALE = "sale"
    VOID = "void"
    """Cancels a sale of the same batch; carries the sale's amount."""
    REFUND = "refund"
    """Gives money back later, as its own transaction."""


def fold(text: str) -> str:
    """Fold text for comparison: no accents, no case, words separated by one space.

    ``"Số tiền (VNĐ)"`` → ``"so tien vnd"``. The letter đ has no combining form,
    so it is mapped by hand.
    """
    decomposed = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^0-9a-z]+", " ", bare.casefold()).split())


def cell_text(value: object) -> str:
    """A cell as text, stripped; spreadsheets' integral floats lose their ``.0``.

    Excel stores ``000061`` typed into a number cell as ``61.0``; the zeros are
    restored by the field normalisers, the ``.0`` must go here.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e18:
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value).strip(STRIP_CHARS)


# --- amounts -------------------------------------------------------------------------

_SPACES = re.compile(f"[{STRIP_CHARS}]+")
# sign, currency mark before or after, the number: "-1.234.567đ", "VND1,234", "+1234"
_AMOUNT = re.compile(
    r"(?i)([-+]?)(?:vn[dđ]|₫|đ)?([-+]?)([0-9.,]+)(?:vn[dđ]|đồng|dong|₫|đ|d)?\.?"
)
_GROUPED = re.compile(r"[0-9]{1,3}(?:[.,][0-9]{3})+")
_DIGITS = re.compile(r"[0-9]+")


def parse_amount(value: object) -> int:
    """An amount of VND as an ``int`` (negative if the cell is).

    Accepts ``1234567``, ``1.234.567`` and ``1,234,567`` (grouped thousands),
    ``1234567.00``, ``1.234.567,00``, ``1 234 567``, a currency mark (``đ``, ``₫``,
    ``VND``) before or after, a leading ``-`` or accounting parentheses, and a
    spreadsheet's numeric cell. A single ``.`` or ``,`` followed by exactly three
    digits is a thousands separator (VND has no fractions); any other is a decimal
    point, and the fraction must be zero.
    """
    if isinstance(value, bool):
        raise ReconcileError(f"not an amount: {value!r}")
    if isinstance(value, int):
        return _checked(value, value)
    if isinstance(value, float):
        if not value.is_integer():  # also NaN and infinities
            raise ReconcileError(f"not a whole amount of VND: {value!r}")
        return _checked(int(value), value)
    text = _SPACES.sub("", cell_text(value))
    if not text:
        raise ReconcileError("empty amount")
    negative = text.startswith("(") and text.endswith(")")
    if negative:
        text = text[1:-1]
    m = _AMOUNT.fullmatch(text)
    if not m or (m[1] and m[2]):
        raise ReconcileError(f"not an amount: {cell_text(value)!r}")
    number = _unsigned_amount(m[3], value)
    if "-" in (m[1], m[2]):
        negative = not negative
    return _checked(-number if negative else number, value)


def _unsigned_amount(text: str, original: object) -> int:
    if _DIGITS.fullmatch(text):
        return int(text)
    dots, commas = text.count("."), text.count(",")
    if dots and commas:
        # The separator that comes last is the decimal point: 1.234.567,00 / 1,234,567.00
        decimal = "." if text.rfind(".") > text.rfind(",") else ","
        whole, _, fraction = text.rpartition(decimal)
        if decimal in whole or not _GROUPED.fullmatch(whole):
            raise ReconcileError(f"not an amount: {original!r}")
        return _with_fraction(int(re.sub(r"[.,]", "", whole)), fraction, original)
    separator = "." if dots else ","
    if dots + commas > 1 or _GROUPED.fullmatch(text):
        if not _GROUPED.fullmatch(text):
            raise ReconcileError(f"not an amount: {original!r}")
        return int(text.replace(separator, ""))
    whole, _, fraction = text.partition(separator)
    if not _DIGITS.fullmatch(whole):
        raise ReconcileError(f"not an amount: {original!r}")
    return _with_fraction(int(whole), fraction, original)


def _with_fraction(whole: int, fraction: str, original: object) -> int:
    if not _DIGITS.fullmatch(fraction):
        raise ReconcileError(f"not an amount: {original!r}")
    if fraction.strip("0"):
        raise ReconcileError(f"VND has no fractions: {original!r}")
    return whole


def _checked(amount: int, original: object) -> int:
    if abs(amount) > MAX_AMOUNT:
        raise ReconcileError(f"amount too large: {original!r}")
    return amount


# --- dates ---------------------------------------------------------------------------

_DMY = re.compile(
    r"([0-9]{1,2})[/.-]([0-9]{1,2})[/.-]([0-9]{4})"
    r"(?:[ T,]+([0-9]{1,2}):([0-9]{1,2})(?::([0-9]{1,2})(?:\.([0-9]{1,6}))?)?)?"
)
_YMD = re.compile(
    r"([0-9]{4})[-/]([0-9]{1,2})[-/]([0-9]{1,2})"
    r"(?:[ T]+([0-9]{1,2}):([0-9]{1,2})(?::([0-9]{1,2})(?:\.([0-9]{1,6}))?)?)?"
    r"\s*(Z|[+-][0-9]{2}:?[0-9]{2})?"
)
_COMPACT = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})")
_TIME_OF_DAY = re.compile(r"([0-9]{1,2}):([0-9]{1,2})(?::([0-9]{1,2})(?:\.([0-9]{1,6}))?)?")
_EXCEL_EPOCH = datetime(1899, 12, 30)
# Spreadsheet serial days that are plausible payment dates (1954..2119): outside this a
# number in a date column is far more likely a wrong column than a date.
_EXCEL_SERIAL_RANGE = (20_000.0, 80_000.0)


def parse_datetime(value: object) -> datetime:
    """A point in time as a naive Vietnam-local ``datetime``.

    Accepts ``dd/mm/yyyy[ hh:mm[:ss]]`` (also with ``-`` or ``.``; day first, as
    Vietnam writes it), ISO 8601 ``yyyy-mm-dd[Thh:mm[:ss[.ffffff]]][Z|±hh:mm]``
    (an offset is converted to Vietnam time), the terminal's ``yyyymmddhhmmss``, a
    spreadsheet date cell, or a spreadsheet serial day number.
    """
    if isinstance(value, datetime):
        return _local(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = _EXCEL_SERIAL_RANGE
        if low <= value <= high:
            return _EXCEL_EPOCH + timedelta(days=float(value))
        raise ReconcileError(f"not a date: {value!r}")
    text = cell_text(value)
    if not text:
        raise ReconcileError("empty date")
    try:
        if m := _DMY.fullmatch(text):
            day, month, year = (int(g) for g in m.group(1, 2, 3))
            return _build(year, month, day, m.group(4), m.group(5), m.group(6), m.group(7))
        if m := _YMD.fullmatch(text):
            year, month, day = (int(g) for g in m.group(1, 2, 3))
            moment = _build(year, month, day, m.group(4), m.group(5), m.group(6), m.group(7))
            if zone := m.group(8):
                moment = _local(moment.replace(tzinfo=_offset(zone)))
            return moment
        if m := _COMPACT.fullmatch(text):
            year, month, day, hh, mm, ss = (int(g) for g in m.groups())
            return _build(year, month, day, str(hh), str(mm), str(ss), None)
    except ValueError as exc:
        raise ReconcileError(f"not a date: {text!r} ({exc})") from None
    raise ReconcileError(f"not a date: {text!r}")


def parse_time_of_day(value: object) -> time:
    """A time of day (``hh:mm[:ss]``) from a column separate from the date."""
    if isinstance(value, time):
        return value.replace(tzinfo=None)
    if isinstance(value, datetime):
        return value.time()
    text = cell_text(value)
    m = _TIME_OF_DAY.fullmatch(text)
    if not m:
        raise ReconcileError(f"not a time of day: {text!r}")
    try:
        return time(int(m[1]), int(m[2]), int(m[3] or 0), _micro(m[4]))
    except ValueError as exc:
        raise ReconcileError(f"not a time of day: {text!r} ({exc})") from None


def _build(
    year: int,
    month: int,
    day: int,
    hh: str | None,
    mm: str | None,
    ss: str | None,
    frac: str | None,
) -> datetime:
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        raise ValueError(f"year {year} out of range")
    return datetime(year, month, day, int(hh or 0), int(mm or 0), int(ss or 0), _micro(frac))


def _micro(frac: str | None) -> int:
    return int((frac or "0").ljust(6, "0"))


def _offset(zone: str) -> timezone:
    if zone == "Z":
        return UTC
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        raise ValueError(f"bad offset {zone}")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _local(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(VN_TZ).replace(tzinfo=None)


# --- cards and codes -----------------------------------------------------------------

_ASCII_DIGIT = re.compile(r"[0-9]")
_VISIBLE_HEAD = 6
_VISIBLE_TAIL = 4


def mask_card(value: object) -> str:
    """A card number as text, with at most the first 6 and last 4 digits visible.

    Like ``protocol.cards.mask_pan``, but counting ASCII digits only, the same
    characters the frame reader counts.
    """
    text = cell_text(value)
    positions = [m.start() for m in _ASCII_DIGIT.finditer(text)]
    if len(positions) <= _VISIBLE_HEAD + _VISIBLE_TAIL:
        return text
    chars = list(text)
    for i in positions[_VISIBLE_HEAD:-_VISIBLE_TAIL]:
        chars[i] = "X"
    return "".join(chars)


def card_last4(value: object) -> str:
    """The last 4 digits of a masked card number, or '' if it does not end in 4 digits.

    ``9704 XXXX XXXX 6163`` and ``970400******6163`` give ``6163``; a number masked
    at the end (``6163XXXX``) gives '' because its last digits are unknown.
    """
    text = cell_text(value)
    if not text or not text[-1:].isascii() or not text[-1:].isdigit():
        return ""
    digits = "".join(_ASCII_DIGIT.findall(text))
    return digits[-4:] if len(digits) >= 4 else ""


def norm_invoice(value: object) -> str:
    """An invoice code for comparison: stripped and upper-cased."""
    return cell_text(value).upper()


def norm_approval(value: object) -> str:
    """An approval code: upper-cased; leading zeros that a spreadsheet ate put back."""
    text = cell_text(value).upper()
    if text.isascii() and text.isdigit() and len(text) < 6:
        return text.zfill(6)
    return text


def norm_ref_no(value: object) -> str:
    """A bank reference number (RRN, 12 digits); leading zeros a spreadsheet ate put back."""
    text = cell_text(value).upper()
    if text.isascii() and text.isdigit() and len(text) < 12:
        return text.zfill(12)
    return text


_KINDS: dict[str, Kind] = {
    **dict.fromkeys(
        (
            "sale", "sales", "purchase", "payment", "pay", "thanh toan", "mua hang",
            "ban", "ban hang", "giao dich thanh toan", "1",
        ),
        Kind.SALE,
    ),
    **dict.fromkeys(
        (
            "void", "voided", "cancel", "canceled", "cancelled", "huy",
            "huy thanh toan", "huy giao dich", "da huy", "reversal", "2",
        ),
        Kind.VOID,
    ),
    **dict.fromkeys(
        ("refund", "return", "hoan tien", "hoan tra", "tra hang"),
        Kind.REFUND,
    ),
}  # fmt: skip


def parse_kind(value: object, extra: dict[str, Kind] | None = None) -> Kind:
    """A transaction type in English or Vietnamese (``SALE``, ``Hủy``, ``Hoàn tiền``…).

    ``extra`` maps further folded spellings (from a mapping file) to kinds.
    """
    folded = fold(cell_text(value))
    found = (extra or {}).get(folded) or _KINDS.get(folded)
    if found is None:
        raise ReconcileError(f"unknown transaction type: {cell_text(value)!r}")
    return found


_STATUSES: dict[str, bool] = {
    **dict.fromkeys(
        (
            "approved", "approve", "success", "successful", "succeeded", "ok", "00",
            "completed", "settled", "thanh cong", "da duyet", "duyet", "chap nhan",
            "hoan thanh", "da thanh toan",
        ),
        True,
    ),
    **dict.fromkeys(
        (
            "declined", "decline", "failed", "fail", "failure", "rejected", "error",
            "that bai", "tu choi", "bi tu choi", "khong thanh cong", "loi",
        ),
        False,
    ),
}  # fmt: skip


def parse_status(value: object) -> bool:
    """Whether a status cell says the transaction went through (True) or not (False)."""
    found = _STATUSES.get(fold(cell_text(value)))
    if found is None:
        raise ReconcileError(f"unknown status: {cell_text(value)!r}")
    return found
