"""The terminal's side of the grammar, used by the simulator."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecrlink import RemoteProtocolError
from ecrlink.protocol import LastTrans, Sale, Settle, Void, parse_request_line


@pytest.mark.parametrize(
    "spelling", ["last trans", "last%20trans", "last+trans", "last_trans", "LAST TRANS"]
)
def test_last_trans_spellings(spelling: str) -> None:
    assert parse_request_line(f"/ecr?rqt=a|b&cmd={spelling}") == LastTrans(
        request_id="a", client_id="b"
    )


def test_percent_encoded_form_and_host_prefix() -> None:
    line = "http://10.0.0.5/ecr?rqt=Request%3A001%7CUser&cmd=sale%7C2000%7C1%7C2%7C3%7C4%7C5"
    sale = parse_request_line(line)
    assert isinstance(sale, Sale)
    assert (sale.request_id, sale.amount, sale.fields) == ("Request:001", 2000, tuple("12345"))


def test_sale_with_fewer_fields() -> None:
    sale = parse_request_line("/ecr?rqt=a|b&cmd=sale|2000")
    assert isinstance(sale, Sale) and sale.fields == ("", "", "", "", "")
    sale = parse_request_line("/ecr?rqt=a|b&cmd=sale|2000|x|y")
    assert isinstance(sale, Sale) and sale.fields == ("x", "y", "", "", "")


def test_void_with_leading_zeros_and_settle_no() -> None:
    assert parse_request_line("/ecr?rqt=a|b&cmd=void|000061") == Void(
        request_id="a", client_id="b", receipt_no="000061"
    )
    assert parse_request_line("/ecr?rqt=a|b&cmd=settle|NO") == Settle(
        request_id="a", client_id="b", confirm=False
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/ecr?rqt=a|b&cmd=sale|-5", "amount"),
        ("/ecr?rqt=a|b&cmd=sale|12345678901", "amount"),
        ("/ecr?rqt=a|b&cmd=refund|5", "unknown command"),
        ("/ecr?rqt=a&cmd=sale|5", "requestId|clientId"),
        ("/ecr?cmd=sale|5", "both rqt= and cmd="),
        ("/foo?rqt=a|b&cmd=sale|5", "/ecr?"),
        ("/ecr?rqt=a|b&cmd=void|x", "receipt_no"),
        ("/ecr?rqt=a|b&cmd=sale|5|1|2|3|4|5|6", "up to five"),
        ("/ecr?rqt=a|b&cmd=sale|5&cmd=void|1", "twice"),
        ("/ecr?rqt=a|b&cmd=settle|MAYBE", "YES or NO"),
    ],
)
def test_malformed_lines(line: str, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        parse_request_line(line)


def test_oversized_line() -> None:
    with pytest.raises(RemoteProtocolError, match="longer than"):
        parse_request_line(b"/ecr?rqt=a|b&cmd=sale|5|" + b"x" * 2000)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_a_request_or_our_error(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        parse_request_line(data)
