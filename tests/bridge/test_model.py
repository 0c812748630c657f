"""The API's input rules, in process and property-based: any JSON body is either a
sale the protocol accepts, exactly as given, or a 422 naming a field."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ecrlink.bridge.errors import ApiError
from ecrlink.bridge.model import read_resolve, read_sale, read_void

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=False)
    | st.text(max_size=25),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8,
)
texts = st.one_of(st.none(), st.text(max_size=24),
                  st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=22))
sale_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"amount": st.one_of(st.integers(-5, 10**11), json_values)},
        optional={"invoice": texts, "reference": texts, "allow_duplicate": json_values,
                  "fields": st.dictionaries(st.sampled_from(["1", "2", "3", "4", "x"]), texts,
                                            max_size=3)},
    ),
)


@settings(max_examples=500)
@given(sale_bodies)
def test_a_sale_body_is_accepted_as_given_or_refused_naming_a_field(body: Any) -> None:
    try:
        sale = read_sale(body, request_id="r1", client_id="ECRLINK", transliterate=False)
    except ApiError as exc:
        assert exc.status == 422 and exc.code == "bad_input"
        assert exc.field and exc.message.startswith(exc.field)
        return
    request = sale.request
    assert request.amount == body["amount"] and 0 < request.amount < 10**10
    assert request.invoice == (body.get("invoice") or "")
    assert request.reference == (body.get("reference") or "")
    assert sale.allow_duplicate is body.get("allow_duplicate", False)
    for key, text in (body.get("fields") or {}).items():
        assert request.fields[int(key) - 1] == (text or "")
    assert request.request_id == "r1"


@settings(max_examples=300)
@given(json_values | st.fixed_dictionaries({"receipt_no": json_values}))
def test_a_void_body_is_a_receipt_number_or_a_422(body: Any) -> None:
    try:
        void = read_void(body, request_id="r1", client_id="ECRLINK")
    except ApiError as exc:
        assert exc.status == 422 and exc.field
        return
    assert void.receipt_no.isdigit() and int(void.receipt_no) > 0


@settings(max_examples=300)
@given(json_values | st.fixed_dictionaries(
    {"who": texts}, optional={"approved_receipt": texts, "not_approved": json_values,
                              "note": texts}))
def test_a_resolve_body_says_exactly_one_thing_or_is_a_422(body: Any) -> None:
    try:
        state, receipt, who, _ = read_resolve(body)
    except ApiError as exc:
        assert exc.status == 422 and exc.field
        return
    assert (state == "approved") == (receipt is not None)
    assert who.strip() == who and who
