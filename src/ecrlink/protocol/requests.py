"""Request models and the exact request line of Web ECR V201.

``Sale(...).line()`` gives the bytes the spec shows, e.g.
``/ecr?rqt=Request:001|UserName:Manh123&cmd=sale|123456|1|2|3|4|5``: separators raw,
nothing percent-encoded (the HTTP transport encodes the one space of ``last trans``).
Models validate themselves on construction, so an invalid request cannot exist.

``parse_request_line`` is the terminal's side of the same grammar, for the simulator:
it accepts the raw and the percent-encoded forms, every spelling of ``last trans``,
and a sale with fewer than five F fields.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import unquote_to_bytes

from .._exceptions import FieldError, RemoteProtocolError
from .field_texts import field_error
from .fields import MAX_AMOUNT_DIGITS, check_amount, check_field, check_receipt_no

__all__ = [
    "INVOICE_FIELD",
    "MAX_REQUEST_LINE",
    "REFERENCE_FIELD",
    "Command",
    "LastTrans",
    "Request",
    "Sale",
    "Settle",
    "Void",
    "parse_request_line",
]

INVOICE_FIELD = 3
"""F3 carries the merchant's invoice number, by the spec's convention."""
REFERENCE_FIELD = 5
"""F5 carries a reference code, by the spec's convention."""

MAX_REQUEST_LINE = 1024
"""The longest request line a terminal accepts, in bytes."""


class Command(enum.StrEnum):
    """The four commands, spelled as they travel in ``cmd=``."""

    SALE = "sale"
    VOID = "void"
    SETTLE = "settle"
    LAST_TRANS = "last trans"


def _check_ids(request_id: str, client_id: str) -> None:
    check_field("request_id", request_id, allow_empty=False)
    check_field("client_id", client_id, allow_empty=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """Common part of every request: who asks, and under which request id."""

    request_id: str
    client_id: str
    command: ClassVar[Command]

    def args(self) -> tuple[str, ...]:
        """The arguments after the command name, already validated."""
        return ()

    def line(self) -> str:
        """The request line exactly as the spec writes it (serial bytes, HTTP target)."""
        cmd = "|".join((self.command.value, *self.args()))
        return f"/ecr?rqt={self.request_id}|{self.client_id}&cmd={cmd}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Sale(Request):
    """``sale|amount|F1|F2|F3|F4|F5``. Use :meth:`build` for named options."""

    amount: int
    fields: tuple[str, str, str, str, str] = ("", "", "", "", "")
    command: ClassVar[Command] = Command.SALE

    def __post_init__(self) -> None:
        _check_ids(self.request_id, self.client_id)
        check_amount(self.amount)
        if len(self.fields) != 5:
            raise field_error("fields", "five_fields", self.fields)
        for i, text in enumerate(self.fields, start=1):
            check_field(f"F{i}", text)

    @classmethod
    def build(
        cls,
        amount: int,
        *,
        request_id: str,
        client_id: str,
        invoice: str | None = None,
        reference: str | None = None,
        fields: Mapping[int, str] | Sequence[str] | None = None,
        transliterate: bool = False,
    ) -> Sale:
        """Make a sale from named options: ``invoice`` goes in F3, ``reference`` in F5.

        ``fields`` gives the free print fields, as ``{1: "...", 4: "..."}`` or as a
        sequence for F1, F2, ... With ``transliterate`` Vietnamese diacritics are
        removed instead of refused.
        """
        slots = ["", "", "", "", ""]
        names = ["F1", "F2", "F3", "F4", "F5"]
        if fields is not None:
            items = fields.items() if isinstance(fields, Mapping) else enumerate(fields, start=1)
            for number, text in items:
                if not isinstance(number, int) or not 1 <= number <= 5:
                    raise field_error("fields", "field_number", number, number=number)
                slots[number - 1] = text
        for number, name, value in (
            (INVOICE_FIELD, "invoice", invoice),
            (REFERENCE_FIELD, "reference", reference),
        ):
            if value is None:
                continue
            if slots[number - 1]:
                raise field_error(name, "field_taken", value, number=number)
            slots[number - 1] = value
            names[number - 1] = name
        cleaned = [
            check_field(name, text, transliterate_text=transliterate)
            for name, text in zip(names, slots, strict=True)
        ]
        return cls(
            request_id=request_id,
            client_id=client_id,
            amount=check_amount(amount),
            fields=(cleaned[0], cleaned[1], cleaned[2], cleaned[3], cleaned[4]),
        )

    @property
    def invoice(self) -> str:
        """F3, the merchant's invoice number."""
        return self.fields[INVOICE_FIELD - 1]

    @property
    def reference(self) -> str:
        """F5, the reference code."""
        return self.fields[REFERENCE_FIELD - 1]

    def args(self) -> tuple[str, ...]:
        return (str(self.amount), *self.fields)


@dataclass(frozen=True, slots=True, kw_only=True)
class Void(Request):
    """``void|receiptNo``: cancel a sale of the current batch by its receipt number."""

    receipt_no: str
    command: ClassVar[Command] = Command.VOID

    def __post_init__(self) -> None:
        _check_ids(self.request_id, self.client_id)
        object.__setattr__(self, "receipt_no", check_receipt_no(self.receipt_no))

    def args(self) -> tuple[str, ...]:
        return (self.receipt_no,)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settle(Request):
    """``settle|YES`` (or ``NO``): close the current batch."""

    confirm: bool = True
    command: ClassVar[Command] = Command.SETTLE

    def __post_init__(self) -> None:
        _check_ids(self.request_id, self.client_id)

    def args(self) -> tuple[str, ...]:
        return ("YES" if self.confirm else "NO",)


@dataclass(frozen=True, slots=True, kw_only=True)
class LastTrans(Request):
    """``last trans``: the most recent successful transaction on the terminal."""

    command: ClassVar[Command] = Command.LAST_TRANS

    def __post_init__(self) -> None:
        _check_ids(self.request_id, self.client_id)


# --- the terminal's side --------------------------------------------------------------

_LAST_TRANS_SPELLINGS = frozenset({"last trans", "last+trans", "last_trans", "lasttrans"})


def _bad(message: str, raw: bytes) -> RemoteProtocolError:
    return RemoteProtocolError(message, raw)


def parse_request_line(line: str | bytes) -> Request:
    """Parse a request line as a terminal would; raise ``RemoteProtocolError`` if malformed.

    Accepts an optional scheme and host in front, the raw and percent-encoded forms,
    ``last trans`` as ``last trans``, ``last%20trans``, ``last+trans`` or ``last_trans``,
    ``void|000061``, and a sale with fewer than five F fields.
    """
    raw = line.encode("utf-8", "replace") if isinstance(line, str) else bytes(line)
    if len(raw) > MAX_REQUEST_LINE:
        raise _bad(f"request line longer than {MAX_REQUEST_LINE} bytes", raw[:64])
    try:
        text = unquote_to_bytes(raw.strip()).decode("ascii")
    except UnicodeDecodeError:
        raise _bad("request line is not ASCII", raw) from None
    start = text.find("/ecr?")
    if start < 0:
        raise _bad("request line must contain '/ecr?'", raw)
    query = text[start + len("/ecr?") :]
    params: dict[str, str] = {}
    for part in query.split("&"):
        key, sep, value = part.partition("=")
        if not sep or key not in ("rqt", "cmd"):
            raise _bad(f"unexpected query part {part[:40]!r}", raw)
        if key in params:
            raise _bad(f"{key}= appears twice", raw)
        params[key] = value
    if "rqt" not in params or "cmd" not in params:
        raise _bad("request line needs both rqt= and cmd=", raw)
    ids = params["rqt"].split("|")
    if len(ids) != 2:
        raise _bad("rqt= must be requestId|clientId", raw)
    request_id, client_id = ids
    name, *args = params["cmd"].split("|")
    name = name.strip().lower()
    try:
        if name == "sale":
            if not 1 <= len(args) <= 6:
                raise _bad("sale takes an amount and up to five fields", raw)
            amount_text = args[0].strip()
            if not (amount_text.isascii() and amount_text.isdigit()):
                raise field_error("amount", "digits_only", amount_text)
            if len(amount_text) > MAX_AMOUNT_DIGITS:
                raise field_error("amount", "too_many_digits", amount_text, max=MAX_AMOUNT_DIGITS)
            padded = [*args[1:], "", "", "", "", ""][:5]
            return Sale(
                request_id=request_id,
                client_id=client_id,
                amount=int(amount_text),
                fields=(padded[0], padded[1], padded[2], padded[3], padded[4]),
            )
        if name == "void":
            if len(args) != 1:
                raise _bad("void takes exactly one receipt number", raw)
            return Void(request_id=request_id, client_id=client_id, receipt_no=args[0])
        if name == "settle":
            if len(args) > 1:
                raise _bad("settle takes YES or NO", raw)
            answer = args[0].strip().upper() if args else "YES"
            if answer not in ("YES", "NO"):
                raise field_error("settle", "yes_or_no", answer)
            return Settle(request_id=request_id, client_id=client_id, confirm=answer == "YES")
        if name in _LAST_TRANS_SPELLINGS:
            if args:
                raise _bad("last trans takes no arguments", raw)
            return LastTrans(request_id=request_id, client_id=client_id)
    except FieldError as exc:
        raise _bad(str(exc), raw) from exc
    raise _bad(f"unknown command {name[:20]!r}", raw)
