"""What people read when a field is refused: every ``FieldError`` rule, Vietnamese and English.

The one table of these texts, beside the rules that raise them, shared by the command
line and the HTTP bridge. A rule has a code (``FieldError.code``, e.g. ``"too_long"``) and
parameters (``FieldError.params``, e.g. ``{"max": 20, "length": 25}``); ``field_error``
raises with both, the English text being the error's ``rule`` (so ``str(exc)`` is the
same ``"reference: must be at most 20 characters, got 25"`` as always), and
``field_message(exc, "vi")`` says it to a cashier: ``"mã tham chiếu: tối đa 20 ký tự,
đang có 25"``. Field names are translated too. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from .._exceptions import FieldError

__all__ = ["FIELD_NAMES", "RULES", "field_error", "field_message", "field_name", "rule_text"]

#: Rule code -> (Vietnamese, English) text; ``{...}`` are the rule's parameters.
RULES: dict[str, tuple[str, str]] = {
    # --- any text field (fields.check_field) ---------------------------------------------
    "not_text": (
        "phải là chuỗi ký tự, không phải {type}",
        "must be text, not {type}",
    ),
    "empty": ("không được để trống", "must not be empty"),
    "forbidden_character": (
        "không được chứa ký tự {char!r} (các ký tự {forbidden} làm hỏng dòng lệnh gửi "
        "máy POS)",
        "must not contain {char!r} (the characters {forbidden} would break the request line)",
    ),
    "control_character": (
        "không được chứa ký tự điều khiển U+{codepoint:04X}",
        "must not contain control character U+{codepoint:04X}",
    ),
    "not_ascii": (
        "chỉ được dùng chữ không dấu: máy POS không in được {char!r} (có thể bật chế độ "
        "tự bỏ dấu)",
        "must be plain ASCII, {char!r} is not printable on the terminal (transliteration "
        "can remove diacritics)",
    ),
    "not_ascii_transliterated": (
        "chỉ được dùng chữ không dấu: máy POS không in được {char!r}, kể cả khi đã bỏ dấu",
        "must be plain ASCII, {char!r} is not printable on the terminal",
    ),
    "too_long": (
        "tối đa {max} ký tự, đang có {length}",
        "must be at most {max} characters, got {length}",
    ),
    # --- amounts (fields.check_amount, the command line) ----------------------------------
    "amount_not_int": (
        "phải là số đồng nguyên (kiểu int), không phải {type}",
        "must be a whole number of VND (an int), not {type}",
    ),
    "amount_format": (
        "phải là số đồng nguyên, ví dụ 150000 hoặc 150.000",
        "must be a whole number of VND, like 150000 or 150.000",
    ),
    "not_positive": ("phải lớn hơn 0", "must be greater than 0"),
    "too_many_digits": ("tối đa {max} chữ số", "must have at most {max} digits"),
    "digits_only": ("chỉ được gồm chữ số", "must contain digits only"),
    # --- receipt numbers (fields.check_receipt_no) ----------------------------------------
    "receipt_bool": (
        "phải là số hóa đơn, không phải giá trị đúng/sai (bool)",
        "must be a receipt number, not a bool",
    ),
    "receipt_not_number": (
        "phải là số, không phải {type}",
        "must be a number, not {type}",
    ),
    # --- requests (requests.Sale, parse_request_line) -------------------------------------
    "five_fields": (
        "lệnh bán có đúng năm trường F1..F5",
        "a sale has exactly five fields F1..F5",
    ),
    "field_number": (
        "số thứ tự trường là từ 1 đến 5, nhận được {number!r}",
        "field numbers are 1..5, got {number!r}",
    ),
    "field_taken": (
        "được gửi trong trường F{number}, mà fields= đã điền trường đó",
        "travels as F{number}, which fields= already sets",
    ),
    "yes_or_no": ("phải là YES hoặc NO", "must be YES or NO"),
    # --- the journal and the chain (journal.store, journal.central) ----------------------
    "at_least": ("phải từ {min} trở lên", "must be at least {min}"),
    "site_name": (
        "phải gồm 1 đến 32 chữ cái, chữ số, '.', '_' hoặc '-', bắt đầu bằng chữ cái hoặc "
        "chữ số",
        "must be 1 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit",
    ),
    "postgresql_url": (
        "phải là địa chỉ dạng postgresql://user@host/database",
        "must be a postgresql://user@host/database URL",
    ),
    # --- the command line ---------------------------------------------------------------
    "field_option": (
        "phải có dạng N=NỘI_DUNG với N từ 1 đến 5, ví dụ 4=Ban 12",
        "must be N=TEXT with N from 1 to 5, like 4=Ban 12",
    ),
    "date_time": (
        "phải là ngày YYYY-MM-DD hoặc ngày giờ YYYY-MM-DDTHH:MM",
        "must be a date YYYY-MM-DD or a date-time YYYY-MM-DDTHH:MM",
    ),
    "central_only": (
        "chỉ dùng với nhật ký trụ sở (--journal postgresql://… có dữ liệu `journal sync`)",
        "only with head office's journal (--journal postgresql://… filled by `journal sync`)",
    ),
    "not_with_all": (
        "không dùng cùng --all (chọn --limit N hoặc --all)",
        "cannot be used with --all (give --limit N or --all)",
    ),
    "one_outcome": (
        "chọn đúng một trong hai: --approved SỐ_HÓA_ĐƠN_POS hoặc --not-approved",
        "give exactly one of --approved RECEIPT or --not-approved",
    ),
}

#: Field name -> what a Vietnamese cashier calls it (English keeps the name itself).
FIELD_NAMES: dict[str, str] = {
    "amount": "số tiền",
    "invoice": "số hóa đơn",
    "reference": "mã tham chiếu",
    "receipt": "số hóa đơn POS",
    "receipt_no": "số hóa đơn POS",
    "--approved": "--approved (số hóa đơn POS)",
    "request_id": "mã yêu cầu (request_id)",
    "client_id": "mã quầy (client_id)",
    "fields": "các trường F1..F5",
    **{f"F{n}": f"trường F{n}" for n in range(1, 6)},
    "--field": "--field (trường in thêm)",
    "--since": "--since (từ ngày)",
    "--until": "--until (đến ngày)",
    "settle": "lệnh kết toán (settle)",
    "resolve": "lệnh resolve",
    "limit": "số dòng tối đa (limit)",
    "chunk": "số dòng mỗi lần đọc (chunk)",
    "site": "mã cửa hàng (site)",
    "--site": "--site (mã cửa hàng)",
    "--limit": "--limit (số dòng)",
    "url": "địa chỉ máy chủ trung tâm (url)",
    "[central] url": "[central] url (địa chỉ máy chủ trung tâm)",
    "--to": "--to (địa chỉ máy chủ trung tâm)",
}

_LANG_INDEX = {"vi": 0, "en": 1}


def rule_text(code: str, lang: str, params: Mapping[str, object] | None = None) -> str:
    """Rule ``code`` in ``lang`` (``"vi"`` or ``"en"``; anything else: English)."""
    return RULES[code][_LANG_INDEX.get(lang, 1)].format(**(params or {}))


def field_name(field: str, lang: str) -> str:
    """What ``field`` is called in ``lang``: its own name in English, or if unknown."""
    return FIELD_NAMES.get(field, field) if lang == "vi" else field


def field_error(field: str, code: str, value: object = None, **params: object) -> FieldError:
    """The ``FieldError`` for ``field`` breaking rule ``code`` (a key of ``RULES``)."""
    return FieldError(field, rule_text(code, "en", params), value, code=code, params=params)


def field_message(exc: FieldError, lang: Literal["vi", "en"] | str) -> str:
    """``"field: rule"`` for people, in ``lang``; ``str(exc)`` in English.

    An error raised without a known rule code (by code outside ecrlink) keeps its own
    ``rule`` text, with the field's name translated.
    """
    rule = rule_text(exc.code, lang, exc.params) if exc.code in RULES else exc.rule
    return f"{field_name(exc.field, lang)}: {rule}"
