"""The HTTP transport against real sockets: exact wire bytes, quirks, every failure."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ecrlink import (
    AsyncTerminal,
    ConfigError,
    ConnectError,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    ReplyTooLarge,
    Terminal,
    TerminalBusy,
)
from ecrlink._exceptions import NotTerminalReply
from ecrlink.transports import AsyncHttpTransport, HttpTransport, certificate_fingerprint
from ecrlink.transports.http11 import first_line as _first_line
from tests.conftest import RawServer, fixture_bytes, http_reply

Start = Callable[[Callable[[socket.socket, bytes], None]], RawServer]


def replying(body: bytes, **kw: str) -> Callable[[socket.socket, bytes], None]:
    def handler(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(http_reply(body, **kw))

    return handler


LINE = "/ecr?rqt=r1|c1&cmd=sale|1000|||||"
# The end of an nginx error page.
PAGE_TAIL = (
    b"<body>\n<center><h1>Error</h1></center>\n<hr><center>nginx</center>\n</body>\n</html>\n"
)


def exchange(url: str, timeout: float = 5.0) -> bytes:
    """One exchange on the bare transport: how its errors look before the client's
    in-doubt handling (tested against the simulator) turns them into results."""
    transport = HttpTransport(url, connect_timeout=1)
    try:
        return transport.exchange(LINE, timeout=timeout)
    finally:
        transport.close()


def request_line(raw: bytes) -> bytes:
    return raw.split(b"\r\n", 1)[0]


def test_wire_request_line_is_the_spec_line(raw_server: Start) -> None:
    server = raw_server(replying(fixture_bytes("sale_approved_swipe.json")))
    with Terminal(server.url, client_id="UserName:Manh123") as pos:
        result = pos.sale(123456, fields=["1", "2", "3", "4", "5"], request_id="Request:001")
    assert result.approved
    head = server.requests[-1]
    assert request_line(head) == (
        b"GET /ecr?rqt=Request:001|UserName:Manh123&cmd=sale|123456|1|2|3|4|5 HTTP/1.1"
    )
    assert b"\r\nConnection: close\r\n" in head
    assert b"\r\nAccept-Encoding: identity\r\n" in head


def test_last_trans_space_goes_as_percent_20(raw_server: Start) -> None:
    server = raw_server(replying(fixture_bytes("last_trans_chip.json")))
    with Terminal(server.url, client_id="Manh123") as pos:
        result = pos.last_transaction(request_id="Request:001")
    assert result.command == "last trans" and result.approved
    assert request_line(server.requests[-1]) == (
        b"GET /ecr?rqt=Request:001|Manh123&cmd=last%20trans HTTP/1.1"
    )


def test_void_and_settle_lines(raw_server: Start) -> None:
    server = raw_server(replying(fixture_bytes("void_serial.json")))
    with Terminal(server.url, client_id="456") as pos:
        assert pos.void(61, request_id="123").approved
    assert request_line(server.requests[-1]) == b"GET /ecr?rqt=123|456&cmd=void|61 HTTP/1.1"
    server = raw_server(replying(fixture_bytes("settle_serial.json")))
    with Terminal(server.url, client_id="456") as pos:
        assert pos.settle(request_id="123").approved
    assert request_line(server.requests[-1]) == b"GET /ecr?rqt=123|456&cmd=settle|YES HTTP/1.1"


def test_http10_reply_without_content_length_read_to_close(raw_server: Start) -> None:
    body = fixture_bytes("sale_chip_serial.json")

    def handler(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n")
        for i in range(0, len(body), 100):
            conn.sendall(body[i : i + 100])
            time.sleep(0.005)

    server = raw_server(handler)
    with Terminal(server.url, client_id="UserName:Manh123") as pos:
        result = pos.sale(2000, request_id="Request:001")
    assert result.transaction is not None and result.transaction.amount == 2000


def test_closed_without_reply_is_a_read_error(raw_server: Start) -> None:
    server = raw_server(lambda conn, _req: None)
    with pytest.raises(ReadError):
        exchange(server.url)


def test_connection_cut_mid_reply_is_a_read_error(raw_server: Start) -> None:
    body = fixture_bytes("sale_approved_swipe.json")

    def handler(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(http_reply(body)[:-100])

    server = raw_server(handler)
    with pytest.raises(ReadError):
        exchange(server.url)


def test_silent_terminal_is_a_read_timeout_which_is_a_timeout_error(raw_server: Start) -> None:
    release = threading.Event()
    server = raw_server(lambda conn, _req: release.wait(5))
    started = time.monotonic()
    with pytest.raises(ReadTimeout) as info:
        exchange(server.url, timeout=0.3)
    release.set()
    assert isinstance(info.value, TimeoutError)
    assert 0.25 < time.monotonic() - started < 3


def test_nobody_listening_is_a_connect_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with Terminal(f"http://127.0.0.1:{port}", connect_timeout=1) as pos:
        with pytest.raises(ConnectError):
            pos.last_transaction()


def test_503_means_busy(raw_server: Start) -> None:
    server = raw_server(replying(b'{"status":"BUSY"}', status="503 Service Unavailable"))
    with Terminal(server.url) as pos, pytest.raises(TerminalBusy):
        pos.sale(1000)
    # busy at the last trans asked before sending: the sale was never sent, and a
    # refusal charges nothing, so no recovery either
    assert len(server.requests) == 1 and b"last%20trans" in server.requests[0]
    with Terminal(server.url, journal=False) as pos, pytest.raises(TerminalBusy):
        pos.sale(1000)
    assert len(server.requests) == 2 and b"cmd=sale" in server.requests[1]


def test_400_with_json_is_a_refusal_not_a_remote_error(raw_server: Start) -> None:
    # A terminal refusing a malformed request has charged nothing either.
    body = b'{"status":"ERROR","message":"bad amount"}'
    server = raw_server(replying(body, status="400 Bad Request"))
    with pytest.raises(NotTerminalReply) as info:
        exchange(server.url)
    assert info.value.status == 400
    assert info.value.first_line == body.decode()
    assert str(info.value) == (
        f"HTTP 400 from {server.url} (not a card terminal): {body.decode()}"
    )


def test_500_stays_a_remote_error_with_one_line_of_the_page(raw_server: Start) -> None:
    page = b"<html>\n<head><title>500 Internal Server Error</title></head>\n" + PAGE_TAIL
    server = raw_server(replying(page, status="500 Internal Server Error"))
    with pytest.raises(RemoteProtocolError) as info:
        exchange(server.url)
    assert not isinstance(info.value, NotTerminalReply)
    assert str(info.value) == f"HTTP 500 from {server.url}: 500 Internal Server Error"
    assert info.value.raw == page


def test_endless_reply_is_cut_at_64k(raw_server: Start) -> None:
    def handler(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n{\"a\":\"")
        for _ in range(100):
            conn.sendall(b"x" * 1024)

    server = raw_server(handler)
    with pytest.raises(ReplyTooLarge):
        exchange(server.url)


@pytest.mark.parametrize(
    "url", ["ftp://10.0.0.1", "http://", "http://10.0.0.1/path", "10.0.0.1:80", ""]
)
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="terminal URL"):
        Terminal(url)


def test_async_terminal_same_wire(raw_server: Start) -> None:
    server = raw_server(replying(fixture_bytes("sale_approved_swipe.json")))

    async def run() -> bool:
        async with AsyncTerminal(server.url, client_id="UserName:Manh123") as pos:
            result = await pos.sale(123456, fields="12345", request_id="Request:001")
            return result.approved

    assert asyncio.run(run())
    assert request_line(server.requests[-1]).startswith(
        b"GET /ecr?rqt=Request:001|UserName:Manh123&cmd=sale|123456|1|2|3|4|5 "
    )


def test_async_timeout_and_closed(raw_server: Start) -> None:
    release = threading.Event()
    slow = raw_server(lambda conn, _req: release.wait(5))
    closed = raw_server(lambda conn, _req: None)

    async def run() -> None:
        slow_transport = AsyncHttpTransport(slow.url)
        with pytest.raises(ReadTimeout):
            await slow_transport.exchange(LINE, timeout=0.2)
        await slow_transport.aclose()
        closed_transport = AsyncHttpTransport(closed.url)
        with pytest.raises(ReadError):
            await closed_transport.exchange(LINE, timeout=5)
        await closed_transport.aclose()

    asyncio.run(run())
    release.set()


# --- https with a pinned self-signed certificate ---------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=terminal", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


class TlsServer:
    """A one-reply-per-connection HTTPS server with a self-signed certificate."""

    def __init__(self, cert: Path, key: Path, body: bytes) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.body = body
        self.requests: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                tls = self.context.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                conn.close()
                continue
            with tls:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if data:
                    self.requests.append(data)
                    tls.sendall(http_reply(self.body))

    def close(self) -> None:
        self.sock.close()


def test_https_pinned_fingerprint_accepts_the_right_certificate(
    self_signed: tuple[Path, Path],
) -> None:
    cert, key = self_signed
    server = TlsServer(cert, key, fixture_bytes("sale_approved_swipe.json"))
    fingerprint = certificate_fingerprint(ssl.PEM_cert_to_DER_cert(cert.read_text()))
    try:
        with Terminal(server.url, client_id="UserName:Manh123", tls_fingerprint=fingerprint,
                      journal=False) as p:
            assert p.sale(123456, request_id="Request:001").approved
        assert len(server.requests) == 1
    finally:
        server.close()


def test_https_wrong_fingerprint_sends_nothing(
    self_signed: tuple[Path, Path],
) -> None:
    cert, key = self_signed
    server = TlsServer(cert, key, fixture_bytes("sale_approved_swipe.json"))
    try:
        with Terminal(server.url, tls_fingerprint="ab" * 32) as pos:
            with pytest.raises(ConnectError, match="does not match the pinned"):
                pos.sale(123456)
        assert server.requests == []
    finally:
        server.close()


def test_fingerprint_needs_https_and_hex() -> None:
    with pytest.raises(ConfigError):
        Terminal("http://127.0.0.1:1", tls_fingerprint="ab" * 32)
    with pytest.raises(ConfigError, match="64 hex"):
        Terminal("https://127.0.0.1:1", tls_fingerprint="xyz")


# --- one deadline for the whole exchange; on_sent; answers that are not the terminal's --

FLAVOURS = pytest.mark.parametrize("flavour", ["sync", "async"])


def exchange_as(
    flavour: str, url: str, *, timeout: float, on_sent: Callable[[], None] | None = None,
    tls_fingerprint: str | None = None,
) -> bytes:
    """One exchange on a fresh HttpTransport or AsyncHttpTransport."""
    if flavour == "sync":
        transport = HttpTransport(url, connect_timeout=1, tls_fingerprint=tls_fingerprint)
        try:
            return transport.exchange(LINE, timeout=timeout, on_sent=on_sent)
        finally:
            transport.close()

    async def run() -> bytes:
        transport = AsyncHttpTransport(url, connect_timeout=1, tls_fingerprint=tls_fingerprint)
        try:
            return await transport.exchange(LINE, timeout=timeout, on_sent=on_sent)
        finally:
            await transport.aclose()

    return asyncio.run(run())


class Calls:
    """An on_sent that records each call and what the server had received by then."""

    def __init__(self, server: RawServer | None = None) -> None:
        self.server = server
        self.requests_seen: list[int] = []

    def __call__(self) -> None:
        self.requests_seen.append(len(self.server.requests) if self.server else 0)

    @property
    def count(self) -> int:
        return len(self.requests_seen)


def trickling(head: bytes, body: bytes, every: float) -> Callable[[socket.socket, bytes], None]:
    """Send ``head`` at once, then ``body`` one byte every ``every`` seconds."""

    def handler(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(head)
        for i in range(len(body)):
            time.sleep(every)
            conn.sendall(body[i : i + 1])

    return handler


def json_head(length: int, status: str = "200 OK") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()


@FLAVOURS
def test_body_trickling_a_byte_at_a_time_is_cut_at_the_deadline(
    raw_server: Start, flavour: str
) -> None:
    # Each byte comes well within any per-read timeout: only a deadline stops it.
    body = fixture_bytes("sale_approved_swipe.json")
    server = raw_server(trickling(json_head(len(body)), body, every=0.2))
    calls = Calls()
    started = time.monotonic()
    with pytest.raises(ReadTimeout, match="within 1 s") as info:
        exchange_as(flavour, server.url, timeout=1.0, on_sent=calls)
    elapsed = time.monotonic() - started
    assert isinstance(info.value, TimeoutError)
    assert 0.9 < elapsed < 2.5
    assert calls.count == 1  # sent: the caller must treat the payment as in doubt


@FLAVOURS
def test_head_trickling_a_byte_at_a_time_is_cut_at_the_deadline(
    raw_server: Start, flavour: str
) -> None:
    body = fixture_bytes("sale_approved_swipe.json")
    server = raw_server(trickling(b"", json_head(len(body)) + body, every=0.2))
    started = time.monotonic()
    with pytest.raises(ReadTimeout):
        exchange_as(flavour, server.url, timeout=1.0)
    assert 0.9 < time.monotonic() - started < 2.5


@FLAVOURS
def test_slow_reply_finished_within_the_deadline_is_returned(
    raw_server: Start, flavour: str
) -> None:
    body = fixture_bytes("last_trans_chip.json")
    pieces = [body[i : i + 60] for i in range(0, len(body), 60)]

    def handler(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(json_head(len(body)))
        for piece in pieces:
            time.sleep(0.05)
            conn.sendall(piece)

    server = raw_server(handler)
    started = time.monotonic()
    assert exchange_as(flavour, server.url, timeout=3.0) == body
    assert time.monotonic() - started > 0.05 * len(pieces) * 0.8  # it did trickle


@FLAVOURS
def test_on_sent_is_called_once_before_the_request_reaches_the_server(
    raw_server: Start, flavour: str
) -> None:
    body = fixture_bytes("sale_approved_swipe.json")
    server = raw_server(replying(body))
    calls = Calls(server)
    assert exchange_as(flavour, server.url, timeout=5.0, on_sent=calls) == body
    assert calls.requests_seen == [0]
    assert len(server.requests) == 1


@FLAVOURS
def test_refused_port_is_a_connect_error_and_on_sent_is_not_called(flavour: str) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    calls = Calls()
    with pytest.raises(ConnectError, match="nothing was sent"):
        exchange_as(flavour, f"http://127.0.0.1:{port}", timeout=5.0, on_sent=calls)
    assert calls.count == 0


def test_unknown_host_is_a_connect_error_and_on_sent_is_not_called() -> None:
    calls = Calls()
    with pytest.raises(ConnectError):
        exchange_as("sync", "http://no-such-terminal.invalid", timeout=5.0, on_sent=calls)
    assert calls.count == 0


@FLAVOURS
def test_reply_lost_after_sending_is_a_read_error_and_on_sent_was_called(
    raw_server: Start, flavour: str
) -> None:
    server = raw_server(lambda conn, _req: None)
    calls = Calls()
    with pytest.raises(ReadError):
        exchange_as(flavour, server.url, timeout=5.0, on_sent=calls)
    assert calls.count == 1


@FLAVOURS
def test_on_sent_raising_stops_the_request_before_any_byte(
    raw_server: Start, flavour: str
) -> None:
    server = raw_server(replying(fixture_bytes("sale_approved_swipe.json")))

    def refuse() -> None:
        raise RuntimeError("journal is full")

    with pytest.raises(RuntimeError, match="journal is full"):
        exchange_as(flavour, server.url, timeout=5.0, on_sent=refuse)
    time.sleep(0.2)  # time enough for a request, had one been sent, to be recorded
    assert server.requests == []


NGINX_404 = (
    b"<!DOCTYPE html>\r\n<html>\r\n<head><title>404 Not Found</title>"
    b"<style>body { font-family: sans-serif }</style></head>\r\n" + PAGE_TAIL
)


@FLAVOURS
def test_404_page_is_not_the_terminal(raw_server: Start, flavour: str) -> None:
    server = raw_server(replying(NGINX_404, status="404 Not Found"))
    calls = Calls()
    with pytest.raises(NotTerminalReply) as info:
        exchange_as(flavour, server.url, timeout=5.0, on_sent=calls)
    assert info.value.status == 404
    assert info.value.first_line == "404 Not Found"
    assert str(info.value) == f"HTTP 404 from {server.url} (not a card terminal): 404 Not Found"
    assert calls.count == 1  # it was sent, yet the status says nothing was charged


@FLAVOURS
def test_error_page_that_never_ends_is_still_not_the_terminal(
    raw_server: Start, flavour: str
) -> None:
    # The status line said it all; a page trickling past the deadline changes nothing.
    page = b"<html><body><p>Please log in to the guest Wi-Fi</p>" + b" " * 200
    server = raw_server(trickling(json_head(len(page), "403 Forbidden"), page, every=0.2))
    started = time.monotonic()
    with pytest.raises(NotTerminalReply) as info:
        exchange_as(flavour, server.url, timeout=1.0)
    assert info.value.status == 403
    assert time.monotonic() - started < 2.5


def test_huge_error_page_is_read_only_in_part(raw_server: Start) -> None:
    page = b"<h1>Blocked by policy</h1>\n" + b"x" * (200 * 1024)
    server = raw_server(replying(page, status="451 Unavailable For Legal Reasons"))
    with pytest.raises(NotTerminalReply) as info:  # not ReplyTooLarge
        exchange(server.url)
    assert info.value.first_line == "Blocked by policy"


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (b"", ""),
        (b"\r\n  \n<html>\n<body>\n</body></html>", ""),
        (b"<html><head><title>Captive &amp; portal</title></head><body>x</body></html>",
         "Captive & portal x"),
        (b"<script>\nvar a = '<b>';\n</script>\n<p>Sign\tin</p>", "Sign in"),
        (b"<!-- a\ncomment -->\n<meta charset=\n'utf-8'>\nH\xc3\xa0 N\xe1\xbb\x99i", "Hà Nội"),
        (b"<p>cut in the middle of a tag <a href=", "cut in the middle of a tag"),
        (b"y" * 500, "y" * 117 + "..."),
    ],
)
def test_first_line_of_a_body(body: bytes, line: str) -> None:
    assert _first_line(body) == line
    assert len(_first_line(body)) <= 120


def test_https_without_pin_to_an_untrusted_certificate_sends_nothing(
    self_signed: tuple[Path, Path],
) -> None:
    cert, key = self_signed
    server = TlsServer(cert, key, fixture_bytes("sale_approved_swipe.json"))
    calls = Calls()
    try:
        with pytest.raises(ConnectError):
            exchange_as("sync", server.url, timeout=5.0, on_sent=calls)
        assert calls.count == 0 and server.requests == []
    finally:
        server.close()


@FLAVOURS
def test_https_pin_and_on_sent(self_signed: tuple[Path, Path], flavour: str) -> None:
    cert, key = self_signed
    server = TlsServer(cert, key, fixture_bytes("sale_approved_swipe.json"))
    right = certificate_fingerprint(ssl.PEM_cert_to_DER_cert(cert.read_text()))
    try:
        wrong_calls = Calls()
        with pytest.raises(ConnectError, match="does not match the pinned"):
            exchange_as(flavour, server.url, timeout=5.0, on_sent=wrong_calls,
                        tls_fingerprint="ab" * 32)
        assert wrong_calls.count == 0 and server.requests == []
        right_calls = Calls()
        exchange_as(flavour, server.url, timeout=5.0, on_sent=right_calls,
                    tls_fingerprint=right)
        assert right_calls.count == 1 and len(server.requests) == 1
    finally:
        server.close()


# --- framing, addresses and sockets on the real wire ----------------------------------


@FLAVOURS
def test_chunked_reply_in_small_writes(raw_server: Start, flavour: str) -> None:
    body = fixture_bytes("sale_chip_serial.json")

    def handler(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(body), 70):
            piece = body[i : i + 70]
            conn.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            time.sleep(0.002)
        conn.sendall(b"0\r\n\r\n")

    server = raw_server(handler)
    assert exchange_as(flavour, server.url, timeout=5.0) == body


@FLAVOURS
def test_host_header_names_the_terminal(raw_server: Start, flavour: str) -> None:
    server = raw_server(replying(b"{}"))
    exchange_as(flavour, server.url, timeout=5.0)
    assert f"\r\nHost: 127.0.0.1:{server.port}\r\n".encode() in server.requests[-1]
    assert b"\r\nUser-Agent: ecrlink\r\n" in server.requests[-1]


def ipv6_loopback() -> socket.socket | None:
    if not socket.has_ipv6:
        return None
    try:
        return socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        return None


@FLAVOURS
def test_an_ipv6_literal_terminal(flavour: str) -> None:
    listener = ipv6_loopback()
    if listener is None:
        pytest.skip("no IPv6 loopback here")
    body = fixture_bytes("last_trans_chip.json")
    heads: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            heads.append(data)
            conn.sendall(http_reply(body))

    threading.Thread(target=serve, daemon=True).start()
    port = listener.getsockname()[1]
    try:
        assert exchange_as(flavour, f"http://[::1]:{port}", timeout=5.0) == body
    finally:
        listener.close()
    assert f"\r\nHost: [::1]:{port}\r\n".encode() in heads[0]


def test_the_socket_sends_without_delay(raw_server: Start) -> None:
    from ecrlink.transports.http import _open_socket, _Site

    server = raw_server(lambda conn, _req: None)
    with _open_socket(_Site(server.url, connect_timeout=1, tls_fingerprint=None)) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


@FLAVOURS
def test_an_unknown_host_sends_nothing_either_way(flavour: str) -> None:
    calls = Calls()
    with pytest.raises(ConnectError, match="nothing was sent"):
        exchange_as(flavour, "http://no-such-terminal.invalid", timeout=5.0, on_sent=calls)
    assert calls.count == 0


@FLAVOURS
def test_https_verified_normally_when_the_certificate_is_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flavour: str
) -> None:
    # Without a fingerprint: the usual chain and name checks (the name being an IP here).
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the "system" store trusts it
    body = fixture_bytes("sale_approved_swipe.json")
    server = TlsServer(cert, key, body)
    calls = Calls()
    try:
        assert exchange_as(flavour, server.url, timeout=5.0, on_sent=calls) == body
        assert calls.count == 1 and len(server.requests) == 1
    finally:
        server.close()


@FLAVOURS
def test_a_bad_port_or_host_is_a_config_error(flavour: str) -> None:
    for url in ("http://127.0.0.1:99999", "http://127.0.0.1:abc", "http://[::1",
                "http://a b:80", "http://a\x00b", "http://" + "x" * 70 + "\u00e0.vn"):
        with pytest.raises(ConfigError, match="terminal URL"):
            exchange_as(flavour, url, timeout=1.0)
