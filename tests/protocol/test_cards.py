"""Card numbers are masked wherever a reply puts them; identifiers are never touched."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecrlink.protocol import luhn_valid, mask_card_numbers, mask_pan, mask_text, parse_reply
from ecrlink.protocol.cards import field_kind
from tests.conftest import fixture_bytes

SALE_DOC: dict[str, Any] = json.loads(fixture_bytes("sale_approved_swipe.json"))


def luhn_complete(prefix: str) -> str:
    """``prefix`` followed by the digit that makes it pass the Luhn check."""
    return next(prefix + d for d in "0123456789" if luhn_valid(prefix + d))


VISA = "4111111111111111"
NAPAS = luhn_complete("970436123456789")
AMEX = "378282246310005"


def reply(top: dict[str, Any] | None = None, **info: Any) -> bytes:
    doc = copy.deepcopy(SALE_DOC)
    doc["transInfo"].update(info)
    doc.update(top or {})
    return json.dumps(doc, ensure_ascii=False).encode()


def test_luhn() -> None:
    assert luhn_valid(VISA) and luhn_valid(AMEX) and luhn_valid("5555555555554444")
    assert luhn_valid(NAPAS) and NAPAS.startswith("9704")
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("") and not luhn_valid("4111 1111") and not luhn_valid("²")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (VISA, "411111XXXXXX1111"),
        ("4111 1111 1111 1111", "4111 11XX XXXX 1111"),
        ("4111-1111-1111-1111", "4111-11XX-XXXX-1111"),
        (AMEX, "378282XXXXX0005"),
        (f"MANH/{NAPAS}/DAO", f"MANH/{NAPAS[:6]}XXXXXX{NAPAS[-4:]}/DAO"),
        (f";{VISA}=25121010000012300000?", ";411111XXXXXX1111=25121010000012300000?"),
        (f"{VISA} and {AMEX}", "411111XXXXXX1111 and 378282XXXXX0005"),
    ],
)
def test_card_numbers_in_text_are_masked(text: str, masked: str) -> None:
    assert mask_text(text) == (masked, True)


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",            # not Luhn-valid
        "0" + luhn_complete("00000100238068")[1:],  # starts with 0 (MIDs, AIDs, counters)
        "411111111111",                # 12 digits: a refNo
        "9" + VISA + "000",            # a 20-digit run is no card number, nor holds one
        "171407333221017301513847",    # the 24-digit posSerial of a fixture
        "4111  1111  1111  1111",      # doubled separators: four short numbers
        "4111 XXXX XXXX 1111",         # already masked
        "MANH/DAO XUAN",
    ],
)
def test_other_digit_runs_are_left_alone(text: str) -> None:
    assert mask_text(text) == (text, False)


@pytest.mark.parametrize(
    ("key", "kind"),
    [("cardNo", "card"), (" CARDNO ", "card"), ("pan", "card"), ("track2", "card"),
     ("cardNumber", "card"), ("time", "identifier"), ("MID", "identifier"),
     (" refNo", "identifier"), ("requestId", "identifier"), ("cardHolder", "other"),
     ("x", "other")],
)
def test_field_kinds(key: str, kind: str) -> None:
    assert field_kind(key) == kind


# --- raw bytes and parsed transaction, the same rule --------------------------------

PLACES: dict[str, bytes] = {
    "cardNo": reply(cardNo=VISA),
    "CARDNO": reply(CARDNO=VISA),
    "cardNumber": reply(cardNumber="4111-1111-1111-1111"),
    "padded cardNo": reply(**{" cardNo": VISA}),
    "track2": reply(track2=f";{VISA}=2512101?"),
    "inside cardHolder": reply(cardHolder=f"MANH {VISA} DAO"),
    "as a number": reply(pan=int(VISA)),
    "as an unknown number": reply(extraNumber=int(VISA)),
    "as a key": reply(**{VISA: "x"}),
    "nested in a list": reply(notes=["a", {"b": VISA}]),
    "nested under an identifier": reply(refNo={"x": VISA}),
    "at the top level": reply(top={"customerCard": VISA}),
    "in the command": reply(top={"command": f"sale {VISA}"}),
    "escaped digits": reply(cardHolder="x").replace(b'"x"', b'"\\u0034111111111111111"'),
}


@pytest.mark.parametrize("place", sorted(PLACES))
def test_a_full_card_number_is_masked_wherever_it_is(place: str) -> None:
    raw = PLACES[place]
    result = parse_reply(raw)
    assert result.transaction is not None
    parsed = json.dumps(
        [result.to_dict(), result.transaction.extra, result.command], ensure_ascii=False,
    )
    for shown in (VISA, "4111-1111-1111-1111", "4111 1111 1111 1111"):
        assert shown not in parsed
    # The flag is the transaction's: of the top level only the ids and command are kept.
    if place not in ("at the top level", "in the command"):
        assert result.transaction.card_no_was_unmasked
    masked, hidden = mask_card_numbers(raw)
    assert len(masked) == len(raw)
    if place != "escaped digits":  # the raw bytes are masked as sent (see cards)
        assert hidden and VISA.encode() not in masked
        assert b"4111-1111-1111-1111" not in masked


def test_masking_keeps_everything_else_byte_for_byte() -> None:
    raw = reply(cardHolder=f"TRẦN {VISA}")
    masked, hidden = mask_card_numbers(raw)
    assert hidden
    assert masked == raw.replace(VISA.encode(), b"411111XXXXXX1111")


def test_a_utf16_reply_is_masked_too() -> None:
    raw = reply(CARDNO=VISA).decode().encode("utf-16")
    masked, hidden = mask_card_numbers(raw)
    assert hidden and VISA not in masked.decode("utf-16")
    result = parse_reply(raw)
    assert result.transaction is not None and result.transaction.extra["CARDNO"] == (
        "411111XXXXXX1111"
    )


def _luhn_valid_time() -> str:
    # A real 14-digit time that passes the Luhn check, as one time in ten does.
    return next(t for s in range(60) if luhn_valid(t := f"201506141555{s:02d}"))


IDENTIFIERS: dict[str, str] = {
    "time": _luhn_valid_time(),
    "mid": luhn_complete("10009155512345"),
    "MID": luhn_complete("10009155512345"),
    "posSerial": luhn_complete("71455815123456"),
    "emvTC": luhn_complete("123456789012345"),
    "refNo": luhn_complete("4111111111111"),
    "requestId": VISA,
    "clientId": luhn_complete("12345678901234"),
}


@pytest.mark.parametrize("key", sorted(IDENTIFIERS))
def test_identifiers_are_never_masked(key: str) -> None:
    value = IDENTIFIERS[key]
    assert luhn_valid(value) and value[0] != "0"
    raw = reply(top={key: value} if key in ("requestId", "clientId") else None,
                **({} if key in ("requestId", "clientId") else {key: value}))
    assert mask_card_numbers(raw) == (raw, False)
    result = parse_reply(raw)
    assert result.transaction is not None
    assert not result.transaction.card_no_was_unmasked
    if key == "time":
        assert result.transaction.time is not None
        assert result.transaction.time.strftime("%Y%m%d%H%M%S") == value
    elif key == "requestId":
        assert result.request_id == value
    elif key == "clientId":
        assert result.client_id == value
    else:
        assert value in json.dumps([result.to_dict(), result.transaction.extra])


def test_mask_pan_counts_every_digit_of_a_card_field() -> None:
    assert mask_pan("4111 1111 1111 1112") == ("4111 11XX XXXX 1112", True)  # no Luhn
    assert mask_pan("9704 XXXX XXXX 6163") == ("9704 XXXX XXXX 6163", False)
    assert mask_pan("４１１１１１１１１１１１１１１１")[1]  # Unicode digits are digits too


_separators = st.sampled_from(["", " ", "-"])


@st.composite
def card_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """A Luhn-valid card number (13-19 digits, first not 0) and how it is written."""
    length = draw(st.integers(13, 19))
    body = draw(st.integers(1, 9).map(str)) + draw(
        st.text("0123456789", min_size=length - 2, max_size=length - 2)
    )
    digits = luhn_complete(body)
    sep = draw(_separators)
    written = sep.join(digits[i:i + 4] for i in range(0, length, 4))
    return digits, written


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    card=card_numbers(),
    key=st.sampled_from(["cardHolder", "cardType", "CARDNO", "cardNumber", "track2",
                         "emvAppName", "transName", "note", " cardNo", "expireDate"]),
    around=st.sampled_from(["{}", "MANH/{}", "{} DAO", "x {} y", "={}="]),
)
def test_property_no_full_card_number_survives(
    card: tuple[str, str], key: str, around: str
) -> None:
    digits, written = card
    raw = reply(**{key: around.format(written)})
    masked, hidden = mask_card_numbers(raw)
    assert hidden and written.encode() not in masked and len(masked) == len(raw)
    result = parse_reply(raw)
    assert result.transaction is not None and result.transaction.card_no_was_unmasked
    parsed = json.dumps([result.to_dict(), result.transaction.extra], ensure_ascii=False)
    assert written not in parsed and digits not in parsed.replace(" ", "").replace("-", "")
