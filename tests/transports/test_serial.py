"""The serial transport over real pseudo-terminals and a socket:// converter."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
import threading
import time
import tty
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from ecrlink import AsyncTerminal, ConfigError, ConnectError, ReadError, ReadTimeout, Terminal
from ecrlink.transports import AsyncSerialTransport, SerialTransport, serial_port_from_url
from ecrlink.transports.serial import DEFAULT_INTER_BYTE_TIMEOUT
from tests.conftest import fixture_bytes


@dataclass
class FakeSerialTerminal:
    """The terminal's end of a pty: reads a request line, answers in scripted chunks."""

    chunks: list[bytes]
    pause: float = 0.03
    delay: float = 0.0  # before the first chunk: the customer paying
    master: int = -1
    path: str = ""
    received: list[bytes] = field(default_factory=list)
    last_byte_at: float = 0.0

    def start(self) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        data = b""
        while True:  # the request has no terminator: it ends at an idle gap
            ready, _, _ = select.select([self.master], [], [], 0.05 if data else 5)
            if not ready:
                break
            try:
                data += os.read(self.master, 4096)
            except OSError:
                return
        self.received.append(data)
        for i, chunk in enumerate(self.chunks):
            time.sleep(self.pause if i else self.delay)
            os.write(self.master, chunk)
            self.last_byte_at = time.monotonic()

    def close(self) -> None:
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def fake_terminal() -> Iterator[list[FakeSerialTerminal]]:
    made: list[FakeSerialTerminal] = []
    yield made
    for terminal in made:
        terminal.close()


def split(raw: bytes, parts: int) -> list[bytes]:
    size = -(-len(raw) // parts)
    return [raw[i : i + size] for i in range(0, len(raw), size)]


def test_reply_in_chunks_returns_right_after_the_last_byte(
    fake_terminal: list[FakeSerialTerminal],
) -> None:
    raw = fixture_bytes("sale_chip_serial.json")
    term = FakeSerialTerminal(split(raw, 5), pause=0.05)
    term.start()
    fake_terminal.append(term)
    with Terminal(f"serial://{term.path}", client_id="UserName:Manh123", journal=False) as pos:
        result = pos.sale(2000, fields="12345", request_id="Request:001")
        returned_at = time.monotonic()
    assert result.approved and result.raw == raw
    assert term.received == [fixture_bytes("sale_chip_serial.request")]
    # Not after an idle timeout (the transport polls every 50 ms): within a few
    # milliseconds of the closing brace.
    assert returned_at - term.last_byte_at < 0.03


def test_half_a_reply_then_silence_is_a_read_timeout(
    fake_terminal: list[FakeSerialTerminal],
) -> None:
    raw = fixture_bytes("void_serial.json")
    term = FakeSerialTerminal([raw[:300]])
    term.start()
    fake_terminal.append(term)
    transport = SerialTransport(f"serial:{term.path}")
    with pytest.raises(ReadTimeout, match="300 bytes received"):
        transport.exchange("/ecr?rqt=123|456&cmd=void|61", timeout=0.4)
    transport.close()


VOID = "/ecr?rqt=123|456&cmd=void|61"


def started(fake_terminal: list[FakeSerialTerminal], term: FakeSerialTerminal) -> str:
    term.start()
    fake_terminal.append(term)
    return f"serial:{term.path}"


def test_half_a_reply_then_a_quiet_line_is_cut_after_the_gap_not_the_timeout(
    fake_terminal: list[FakeSerialTerminal],
) -> None:
    raw = fixture_bytes("void_serial.json")
    url = started(fake_terminal, FakeSerialTerminal([raw[:300]]))
    transport = SerialTransport(url, inter_byte_timeout=0.3)
    begun = time.monotonic()
    with pytest.raises(ReadError, match="cut off after 300 bytes: the line went quiet"):
        transport.exchange(VOID, timeout=30)
    assert 0.25 < time.monotonic() - begun < 2.5
    transport.close()


def test_the_default_gap_is_two_seconds() -> None:
    assert DEFAULT_INTER_BYTE_TIMEOUT == 2.0
    assert SerialTransport("serial:/dev/null").inter_byte_timeout == 2.0


def test_pauses_shorter_than_the_gap_and_a_long_wait_before_the_reply_are_fine(
    fake_terminal: list[FakeSerialTerminal],
) -> None:
    # Silence before the first byte is the customer paying, not a cut: only a reply
    # that has started is held to the gap.
    raw = fixture_bytes("void_serial.json")
    url = started(fake_terminal, FakeSerialTerminal(split(raw, 3), pause=0.15, delay=0.8))
    transport = SerialTransport(url, inter_byte_timeout=0.4)
    assert transport.exchange(VOID, timeout=5) == raw
    transport.close()


@pytest.mark.parametrize("gap", [0, -1, float("inf"), "2"])
def test_bad_inter_byte_timeout(gap: object) -> None:
    with pytest.raises(ConfigError, match="inter_byte_timeout"):
        SerialTransport("serial:/dev/null", inter_byte_timeout=gap)  # type: ignore[arg-type]


def test_on_sent_is_called_once_before_the_write(
    fake_terminal: list[FakeSerialTerminal],
) -> None:
    raw = fixture_bytes("void_serial.json")
    term = FakeSerialTerminal([raw])
    url = started(fake_terminal, term)
    seen: list[int] = []
    transport = SerialTransport(url)
    assert transport.exchange(VOID, timeout=5, on_sent=lambda: seen.append(len(term.received)))
    assert seen == [0] and term.received == [VOID.encode()]
    transport.close()


def test_missing_device_does_not_call_on_sent() -> None:
    calls: list[None] = []
    transport = SerialTransport("serial:///dev/does-not-exist")
    with pytest.raises(ConnectError):
        transport.exchange(VOID, timeout=1, on_sent=lambda: calls.append(None))
    assert calls == []


def test_on_sent_raising_writes_nothing(fake_terminal: list[FakeSerialTerminal]) -> None:
    term = FakeSerialTerminal([])
    url = started(fake_terminal, term)
    transport = SerialTransport(url)

    def refuse() -> None:
        raise RuntimeError("journal is full")

    with pytest.raises(RuntimeError, match="journal is full"):
        transport.exchange(VOID, timeout=1, on_sent=refuse)
    time.sleep(0.2)  # the fake terminal ends a request at a 50 ms gap
    assert term.received == []
    # Let the fake terminal's thread finish instead of waiting on a closed descriptor.
    os.write(term._slave, b"x")
    time.sleep(0.1)
    transport.close()


def test_async_on_sent_runs_on_the_event_loop_thread(
    fake_terminal: list[FakeSerialTerminal],
) -> None:
    raw = fixture_bytes("void_serial.json")
    term = FakeSerialTerminal([raw])
    url = started(fake_terminal, term)
    threads: list[int] = []

    async def run() -> bytes:
        transport = AsyncSerialTransport(url, inter_byte_timeout=0.5)
        try:
            return await transport.exchange(
                VOID, timeout=5, on_sent=lambda: threads.append(threading.get_ident())
            )
        finally:
            await transport.aclose()

    assert asyncio.run(run()) == raw
    assert threads == [threading.get_ident()]


def test_async_serial(fake_terminal: list[FakeSerialTerminal]) -> None:
    raw = fixture_bytes("settle_serial.json")
    term = FakeSerialTerminal(split(raw, 3))
    term.start()
    fake_terminal.append(term)

    async def run() -> bool:
        async with AsyncTerminal(f"serial://{term.path}", client_id="456") as pos:
            return (await pos.settle(request_id="123")).approved

    assert asyncio.run(run())
    assert term.received == [fixture_bytes("settle_serial.request")]


def test_socket_url_for_serial_over_ethernet_converters() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    got: list[bytes] = []

    def converter() -> None:
        conn, _ = server.accept()
        with conn:
            got.append(conn.recv(4096))
            conn.sendall(fixture_bytes("last_trans_chip.json"))
            time.sleep(0.2)

    threading.Thread(target=converter, daemon=True).start()
    with Terminal(f"socket://127.0.0.1:{port}", client_id="Manh123") as pos:
        assert pos.last_transaction(request_id="Request:001").approved
    server.close()
    assert got == [b"/ecr?rqt=Request:001|Manh123&cmd=last trans"]


def test_missing_device_is_a_connect_error() -> None:
    with Terminal("serial:///dev/does-not-exist") as pos, pytest.raises(ConnectError):
        pos.settle()


@pytest.mark.parametrize(
    ("url", "port", "baud"),
    [
        ("serial:///dev/ttyUSB0", "/dev/ttyUSB0", 115200),
        ("serial:/dev/ttyS1", "/dev/ttyS1", 115200),
        ("serial:COM3", "COM3", 115200),
        ("COM4", "COM4", 115200),
        ("serial:///dev/ttyUSB0?baudrate=9600", "/dev/ttyUSB0", 9600),
        ("rfc2217://10.0.0.9:4001", "rfc2217://10.0.0.9:4001", 115200),
        ("socket://10.0.0.9:4001", "socket://10.0.0.9:4001", 115200),
    ],
)
def test_serial_url_forms(url: str, port: str, baud: int) -> None:
    assert serial_port_from_url(url) == (port, baud)


@pytest.mark.parametrize("url", ["serial:", "serial:///dev/x?baudrate=fast", "serial:COM1?x=1"])
def test_bad_serial_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        serial_port_from_url(url)
