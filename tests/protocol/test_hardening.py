"""Whatever bytes a terminal sends, only ecrlink's own errors escape the protocol core.

The six real replies are mutated (bytes flipped, inserted, deleted, truncated; JSON
values of every kind spliced into every key; huge digit strings, Unicode digits,
nested values, booleans, floats and null in place of values) and every entry point is
exercised: ``parse_reply``, ``JsonFramer``, ``check_answers``, ``approval_conflicts``,
``mask_card_numbers``, and every accessor of the ``Result`` and its ``Transaction``.
Deterministic (``derandomize``) and bounded, so that CI runs the same examples in a few
seconds.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecrlink import EcrError, RemoteProtocolError
from ecrlink.protocol import (
    JsonFramer,
    Request,
    Result,
    approval_conflicts,
    check_answers,
    mask_card_numbers,
    parse_reply,
    parse_request_line,
)
from tests.conftest import FIXTURES, fixture_bytes

NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))
RAW: dict[str, bytes] = {name: fixture_bytes(f"{name}.json") for name in NAMES}
REQUESTS: dict[str, Request] = {
    name: parse_request_line(fixture_bytes(f"{name}.request")) for name in NAMES
}
DOCS: dict[str, dict[str, Any]] = {name: json.loads(raw) for name, raw in RAW.items()}

HARDENED = settings(
    max_examples=300, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- what every parsed result must survive --------------------------------------------


def touch(result: Result) -> None:
    """Every accessor and conversion of a result; none may raise."""
    assert isinstance(result.approved, bool)
    for lang in ("en", "vi"):
        assert isinstance(result.message(lang), str)
        assert isinstance(result.advice(lang), str)
        json.dumps(result.to_dict(lang))
    t = result.transaction
    if t is not None:
        for value in (t.card_last4, t.receipt_number, t.batch_number):
            assert value is None or isinstance(value, str | int)
        json.dumps(t.to_dict())
        json.dumps(t.extra)
        if t.card_last4 is not None:
            assert t.card_last4.isascii() and t.card_last4.isdigit()


def exercise(raw: bytes, request: Request) -> None:
    """Feed ``raw`` to every entry point; only EcrError subclasses may come out."""
    masked, _ = mask_card_numbers(raw)  # never raises at all
    assert isinstance(masked, bytes)
    try:
        result = parse_reply(raw)
    except EcrError:
        return
    touch(result)
    assert isinstance(approval_conflicts(result, request), list)
    if result.approved:
        # The one rule: approved only for a code that is 00 with no conversion.
        assert result.return_code == "00" or (
            result.return_code is None and result.command == "settle"
        )
    try:
        checked = check_answers(result, request)
    except EcrError:
        return
    touch(checked)


def frame(raw: bytes, cuts: list[int]) -> None:
    """Feed ``raw`` to a framer in pieces; only EcrError may escape, frames parse or not."""
    framer = JsonFramer(max_size=4096)
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    for piece in pieces:
        try:
            frames = framer.feed(piece)
        except EcrError:
            continue
        for one in frames:
            with contextlib.suppress(EcrError):
                touch(parse_reply(one))
    assert isinstance(framer.pending, bytes)


# --- strategies -----------------------------------------------------------------------

NASTY_TEXT = [
    "9" * 5000, "0" * 4999 + "1", "1" * 4301, "²", "²³⁴⁵", "١٢٣٤٥٦", "٠٠", "１２３４５６",
    "０", "00", " 00 ", "0", "000", "-0", "0.0", "1e5", "NaN", "Infinity", "", "   ",
    "\u0000", "\ud800", "\ufeff", "4111111111111111", "4111 1111 1111 1111",
    "20150229250000", "00010101000000", "99991231235959", "２０１５０６１４１５５５４３",
    "DONE", "APPROVE", "last trans", "x" * 300,
]
scalars = (
    st.none() | st.booleans() | st.integers()
    | st.integers(min_value=-(10**4000), max_value=10**4000)
    | st.floats() | st.text(max_size=24) | st.sampled_from(NASTY_TEXT)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
KEYS = sorted({key for doc in DOCS.values() for key in doc}
              | {key for doc in DOCS.values() for key in doc.get("transInfo", {})})
names = st.sampled_from(NAMES)


def dump(doc: Any, ascii_only: bool) -> bytes:
    return json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


# --- the properties -------------------------------------------------------------------


@HARDENED
@given(name=names, data=st.data())
def test_byte_mutations(name: str, data: st.DataObject) -> None:
    raw = bytearray(RAW[name])
    for _ in range(data.draw(st.integers(1, 6))):
        kind = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup"]))
        at = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if kind == "flip" and raw:
            raw[at] ^= data.draw(st.integers(1, 255))
        elif kind == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del raw[at:at + data.draw(st.integers(1, 16))]
        elif kind == "truncate":
            del raw[at:]
        else:  # a stretch repeated: duplicate keys, doubled braces
            raw[at:at] = raw[at:at + data.draw(st.integers(1, 40))]
    exercise(bytes(raw), REQUESTS[name])
    frame(bytes(raw), sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=4))))


@HARDENED
@given(name=names, data=st.data(), ascii_only=st.booleans())
def test_json_values_spliced_into_keys(name: str, data: st.DataObject, ascii_only: bool) -> None:
    doc = json.loads(RAW[name])
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.sampled_from(["top", "info"]))
        target = doc if where == "top" or not isinstance(doc.get("transInfo"), dict) else (
            doc["transInfo"]
        )
        key = data.draw(st.sampled_from(KEYS) | st.text(max_size=8))
        target[key] = data.draw(json_values)
    exercise(dump(doc, ascii_only), REQUESTS[name])


@HARDENED
@given(
    name=names,
    kind=st.sampled_from(["true", "false", "null", "0.0", "-0.0", "1e308", "NaN",
                          "-Infinity", "[]", "{}", '{"a":["00"]}', '[["0"]]', "0",
                          "4111111111111111", '"²"', '"١٢"']),
    data=st.data(),
)
def test_every_value_replaced_by_one_kind(name: str, kind: str, data: st.DataObject) -> None:
    doc = json.loads(RAW[name])
    info = doc["transInfo"]
    keys = data.draw(st.sets(st.sampled_from(sorted(info)), min_size=1))
    replacement = json.loads(kind)
    for key in keys:
        info[key] = replacement
    exercise(json.dumps(doc).encode(), REQUESTS[name])


@HARDENED
@given(name=names, key=st.sampled_from(KEYS), text=st.sampled_from(NASTY_TEXT))
def test_nasty_text_in_any_key(name: str, key: str, text: str) -> None:
    for where in ("top", "info"):
        doc = json.loads(RAW[name])
        (doc if where == "top" else doc["transInfo"])[key] = text
        exercise(dump(doc, ascii_only=False), REQUESTS[name])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "literal",
    ["9" * 5000, "-" + "9" * 5000, "1" + "0" * 400 + "e-400", "1e999999",
     "[" * 50_000 + "]" * 50_000, '{"a":' * 20_000 + "1" + "}" * 20_000],
)
def test_huge_literals_in_place_of_each_value(name: str, literal: str) -> None:
    # Written into the bytes directly: json.dumps could not produce these.
    raw = RAW[name]
    for key in ("amount", "returnCode", "receiptNo", "time", "status", "transInfo"):
        needle = f'"{key}":'.encode()
        at = raw.find(needle)
        if at < 0:
            continue
        start = at + len(needle)
        end = raw.find(b",", start) if key != "transInfo" else len(raw) - 1
        exercise(raw[:start] + literal.encode() + raw[end:], REQUESTS[name])


# --- the known holes, one by one --------------------------------------------------------


def _sale(**info: Any) -> bytes:
    doc = json.loads(RAW["sale_approved_swipe"])
    doc["transInfo"].update(info)
    return json.dumps(doc, ensure_ascii=False).encode()


@pytest.mark.parametrize("amount", ["9" * 5000, "9" * 13, "²", "١٢٣", "１２３", -5, 1.5,
                                    True, 10**13, [1], {"v": 1}, "1e5", "0x10"])
def test_an_amount_that_is_not_a_bounded_whole_number_is_refused(amount: object) -> None:
    with pytest.raises(RemoteProtocolError, match="amount"):
        parse_reply(_sale(amount=amount))


def test_amounts_as_iso_pads_them_are_read() -> None:
    result = parse_reply(_sale(amount="000000123456"))
    assert result.transaction is not None and result.transaction.amount == 123456


@pytest.mark.parametrize("number", ["9" * 5000, "²", "١٢", "１２", "0" * 19 + "1", "-1", "1.0"])
def test_receipt_and_batch_numbers_never_raise(number: str) -> None:
    t = parse_reply(_sale(receiptNo=number, batchNo=number)).transaction
    assert t is not None
    assert t.receipt_number is None and t.batch_number is None
    assert t.receipt_no == number  # the text is kept as sent


@pytest.mark.parametrize(
    "time", ["２０１５０６１４１５５５４３", "20150614155543²", "00010101000000",
             "20150614240000", "20150230120000", "2015061415554", "9" * 5000],
)
def test_a_time_that_is_no_time_is_none(time: str) -> None:
    t = parse_reply(_sale(time=time)).transaction
    assert t is not None and t.time is None


def test_unicode_digits_are_not_card_digits() -> None:
    t = parse_reply(_sale(cardNo="9704 XXXX XXXX 61²³")).transaction
    assert t is not None and t.card_last4 is None


def test_booleans_and_floats_are_never_read_as_numbers() -> None:
    t = parse_reply(_sale(receiptNo=True, batchNo=0.0, stan=False, tipAmount=0.0)).transaction
    assert t is not None
    assert (t.receipt_no, t.batch_no, t.extra["tipAmount"]) == ("true", "0.0", "0.0")
    assert t.receipt_number is None and t.batch_number is None


def test_nesting_as_deep_as_json_allows_is_kept_as_text_or_refused() -> None:
    for depth in (10, 500, 900, 2000, 100_000):
        raw = _sale(x="@").replace(b'"@"', b"[" * depth + b"]" * depth)
        exercise(raw, REQUESTS["sale_approved_swipe"])
