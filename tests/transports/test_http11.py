"""The HTTP exchange's pure core: whatever way the reply's bytes are framed and cut into
pieces, the same body or the same error; the request exactly as h11 would write it."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ecrlink.transports.http11 as core
from ecrlink import (
    ConnectError,
    ConnectTimeout,
    EcrError,
    NotTerminalReply,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    ReplyTooLarge,
    TerminalBusy,
)
from ecrlink._exceptions import LocalProtocolError, WriteError
from ecrlink.protocol import MAX_REPLY_BYTES
from ecrlink.transports.http11 import ERROR_BODY_BYTES, HttpExchange, connecting, request_bytes
from tests.conftest import FIXTURES, fixture_bytes

PROPERTY = settings(
    max_examples=150, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
URL = "http://10.0.0.5:8080"
LINE = "/ecr?rqt=Request:001|UserName:Manh123&cmd=last trans"
BODIES = [fixture_bytes(p.name) for p in sorted(FIXTURES.glob("*.json"))]


def new() -> HttpExchange:
    return HttpExchange(URL, b"10.0.0.5:8080", LINE)


# --- replies as a terminal might frame them ----------------------------------------------


def content_length(body: bytes, status: str = "200 OK") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def chunked(body: bytes, sizes: list[int], status: str = "200 OK") -> bytes:
    out = f"HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    rest, turn = body, 0
    while rest:
        size = max(1, sizes[turn % len(sizes)]) if sizes else len(rest)
        piece, rest = rest[:size], rest[size:]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
        turn += 1
    return out + b"0\r\n\r\n"


def to_close(body: bytes, status: str = "200 OK") -> bytes:
    return f"HTTP/1.0 {status}\r\nContent-Type: text/html\r\n\r\n".encode() + body


def framings(body: bytes, sizes: list[int], status: str = "200 OK") -> dict[str, bytes]:
    return {"content-length": content_length(body, status),
            "chunked": chunked(body, sizes, status), "close": to_close(body, status)}


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` in pieces at the (wrapped) ``cuts``."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def feed(exchange: HttpExchange, pieces: list[bytes]) -> bool:
    """Give the pieces, then the close, as a link would; True if the reply completed."""
    exchange.written()
    for piece in pieces:
        if exchange.receive(piece):
            return True
    return exchange.receive(b"")


cuts = st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=12)
chunk_sizes = st.lists(st.integers(min_value=1, max_value=400), max_size=6)
bodies = st.one_of(st.sampled_from(BODIES), st.binary(max_size=3000))


@PROPERTY
@given(body=bodies, sizes=chunk_sizes, at=cuts, framing=st.sampled_from(
    ["content-length", "chunked", "close"]))
def test_any_framing_in_any_pieces_gives_the_body(
    body: bytes, sizes: list[int], at: list[int], framing: str
) -> None:
    exchange = new()
    assert feed(exchange, split(framings(body, sizes)[framing], at))
    assert exchange.status == 200 and exchange.reply() == body


@PROPERTY
@given(body=st.sampled_from(BODIES), sizes=chunk_sizes, at=cuts, data=st.data())
def test_a_reply_cut_short_is_a_read_error_never_a_body(
    body: bytes, sizes: list[int], at: list[int], data: st.DataObject
) -> None:
    framing = data.draw(st.sampled_from(["content-length", "chunked"]))
    whole = framings(body, sizes)[framing]
    end = data.draw(st.integers(min_value=0, max_value=len(whole) - 1))
    exchange = new()
    with pytest.raises(ReadError, match="without a complete reply"):
        feed(exchange, split(whole[:end], at))


@PROPERTY
@given(body=st.sampled_from(BODIES), at=cuts, end=st.integers(min_value=0))
def test_read_to_close_is_whatever_came_before_the_close(
    body: bytes, at: list[int], end: int
) -> None:
    # Framing cannot tell a cut HTTP/1.0 body; the JSON framer and parser above can.
    whole = to_close(body)
    head = len(whole) - len(body)
    end = head + end % (len(body) + 1)
    exchange = new()
    assert feed(exchange, split(whole[:end], at))
    assert exchange.reply() == body[: end - head]


@PROPERTY
@given(sizes=chunk_sizes, at=st.lists(st.integers(min_value=0), max_size=6),
       extra=st.integers(min_value=1, max_value=5000),
       framing=st.sampled_from(["content-length", "chunked", "close"]))
def test_a_body_past_the_limit_is_refused_however_framed(
    sizes: list[int], at: list[int], extra: int, framing: str
) -> None:
    body = b"{" + b"x" * (MAX_REPLY_BYTES + extra)
    exchange = new()
    with pytest.raises(ReplyTooLarge) as info:
        feed(exchange, split(framings(body, [s * 200 for s in sizes])[framing], at))
    assert info.value.raw == body[:256]


def test_a_body_exactly_at_the_limit_is_taken() -> None:
    body = b"y" * MAX_REPLY_BYTES
    exchange = new()
    assert feed(exchange, [content_length(body)])
    assert exchange.reply() == body


@PROPERTY
@given(garbage=st.binary(min_size=1, max_size=2000).filter(lambda b: b[:1] not in b"H\r\n"),
       at=cuts)
def test_garbage_is_a_read_error(garbage: bytes, at: list[int]) -> None:
    exchange = new()
    with pytest.raises(ReadError):
        feed(exchange, split(garbage, at))
    assert exchange.status is None


@PROPERTY
@given(data=st.binary(max_size=600), at=cuts)
def test_any_bytes_end_in_a_body_or_one_of_our_errors(data: bytes, at: list[int]) -> None:
    exchange = new()
    try:
        done = feed(exchange, split(b"HTTP/1.1 200 OK\r\n" + data, at))
    except (ReadError, ReplyTooLarge):
        return
    assert done and exchange.status == 200 and isinstance(exchange.reply(), bytes)


def test_pieces_after_the_reply_are_not_read() -> None:
    body = BODIES[0]
    exchange = new()
    assert exchange.receive(content_length(body) + b"HTTP/1.1 200 OK\r\n\r\njunk")
    assert exchange.reply() == body


def test_an_interim_100_continue_is_skipped() -> None:
    exchange = new()
    assert exchange.receive(b"HTTP/1.1 100 Continue\r\n\r\n" + content_length(BODIES[1]))
    assert exchange.status == 200 and exchange.reply() == BODIES[1]


def test_an_endless_head_is_a_read_error() -> None:
    exchange = new()
    exchange.receive(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(ReadError):
        for _ in range(100):
            exchange.receive(b"X-Filler: " + b"a" * 1000 + b"\r\n")


# --- what a status means ------------------------------------------------------------------

STATUSES: list[tuple[str, type[EcrError]]] = [
    ("400 Bad Request", NotTerminalReply), ("404 Not Found", NotTerminalReply),
    ("451 Unavailable", NotTerminalReply), ("503 Service Unavailable", TerminalBusy),
    ("500 Internal Server Error", RemoteProtocolError), ("302 Found", RemoteProtocolError),
]


@PROPERTY
@given(case=st.sampled_from(STATUSES), sizes=chunk_sizes, at=cuts,
       framing=st.sampled_from(["content-length", "chunked", "close"]))
def test_every_non_2xx_status_is_its_error_however_framed(
    case: tuple[str, type[EcrError]], sizes: list[int], at: list[int], framing: str
) -> None:
    status, error = case
    page = b"<html><head><title>" + status.encode() + b"</title></head></html>"
    exchange = new()
    assert feed(exchange, split(framings(page, sizes, status)[framing], at))
    with pytest.raises(error) as info:
        exchange.reply()
    if isinstance(info.value, NotTerminalReply):
        assert info.value.first_line == status and info.value.url == URL
    assert "<" not in str(info.value)


def test_an_error_page_is_read_only_as_far_as_its_first_line_needs() -> None:
    exchange = new()
    page = b"<h1>Blocked</h1>" + b"x" * (10 * ERROR_BODY_BYTES)
    whole = content_length(page, "403 Forbidden")
    done_at = next(i for i in range(0, len(whole), 1024) if exchange.receive(whole[i:i + 1024]))
    assert done_at < 2 * ERROR_BODY_BYTES
    with pytest.raises(NotTerminalReply, match="Blocked"):
        exchange.reply()


# --- what a failure of the link is called ---------------------------------------------------


def io_error(exchange: HttpExchange, exc: Exception) -> BaseException:
    with pytest.raises(EcrError) as info, exchange.io(2.5):
        raise exc
    return info.value


@pytest.mark.parametrize(
    ("written", "exc", "expected"),
    [
        (False, TimeoutError(), ReadTimeout),
        (True, TimeoutError(), ReadTimeout),
        (False, BrokenPipeError(), WriteError),
        (True, ConnectionResetError(), ReadError),
        (True, OSError("ssl: bad record mac"), ReadError),
    ],
)
def test_a_failure_after_sending_is_in_doubt(
    written: bool, exc: Exception, expected: type[EcrError]
) -> None:
    exchange = new()
    if written:
        exchange.written()
    error = io_error(exchange, exc)
    assert type(error) is expected and error.__cause__ is exc
    if expected is ReadTimeout:
        assert "within 2.5 s" in str(error) and isinstance(error, TimeoutError)


@pytest.mark.parametrize("exc", [TimeoutError(), ConnectionResetError(), ReadError("cut")])
def test_a_failure_once_an_error_status_came_is_that_status(exc: Exception) -> None:
    exchange = new()
    exchange.written()
    assert not exchange.receive(b"HTTP/1.1 404 Not Found\r\nContent-Length: 99\r\n\r\n<p>Gone")
    error = io_error(exchange, exc)
    assert isinstance(error, NotTerminalReply) and error.first_line == "Gone"


def test_a_failure_after_a_2xx_status_stays_in_doubt() -> None:
    exchange = new()
    exchange.written()
    exchange.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n{")
    assert isinstance(io_error(exchange, TimeoutError()), ReadTimeout)


def test_other_errors_pass_through_io_unnamed() -> None:
    with pytest.raises(ReplyTooLarge), new().io(1):
        raise ReplyTooLarge("big")
    with pytest.raises(KeyError), new().io(1):
        raise KeyError("a bug stays a bug")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [(TimeoutError(), ConnectTimeout), (ConnectionRefusedError(), ConnectError),
     (OSError(-2, "Name or service not known"), ConnectError),
     (UnicodeError("label empty or too long"), ConnectError)],
)
def test_a_failure_while_connecting_sent_nothing(
    exc: Exception, expected: type[EcrError]
) -> None:
    with pytest.raises(expected, match="nothing was sent") as info, connecting(URL):
        raise exc
    assert info.value.__cause__ is exc


# --- the request --------------------------------------------------------------------------

lines = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1,
                max_size=300)
hosts = st.sampled_from([b"10.0.0.5", b"10.0.0.5:8080", b"[::1]:8080", b"terminal.local"])


@PROPERTY
@given(line=lines, host=hosts)
def test_our_request_is_byte_for_byte_the_one_h11_writes(line: str, host: bytes) -> None:
    exchange = HttpExchange(URL, host, line)
    conn = h11.Connection(h11.CLIENT)
    headers = [(b"Host", host), *core.HEADERS]
    expected = conn.send(h11.Request(method=b"GET", target=exchange.request.split(b" ")[1],
                                     headers=headers))
    assert exchange.request == expected
    assert exchange.request.split(b" ")[1] == line.replace(" ", "%20").encode()


def test_the_request_on_the_wire() -> None:
    assert request_bytes(b"/ecr?rqt=1|2&cmd=last%20trans", b"10.0.0.5:8080") == (
        b"GET /ecr?rqt=1|2&cmd=last%20trans HTTP/1.1\r\nHost: 10.0.0.5:8080\r\n"
        b"Accept: application/json\r\nAccept-Encoding: identity\r\nConnection: close\r\n"
        b"User-Agent: ecrlink\r\n\r\n"
    )


@pytest.mark.parametrize("line", ["", "/ecr?a=\t", "/ecr?x=\x00", "/ecr?n=Hà Nội", "/e\x7f"])
def test_a_line_http_cannot_carry_is_refused_before_sending(line: str) -> None:
    with pytest.raises(LocalProtocolError, match="request line"):
        HttpExchange(URL, b"h", line)


def test_the_core_does_no_io() -> None:
    tree = ast.parse(Path(core.__file__).read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert imported <= {"__future__", "collections", "contextlib", "typing", "h11", "html",
                        "re"}, imported
