"""Web ECR over RS232, with pyserial.

The request line is written as-is, with no terminator; the reply has no framing
either, so ``JsonFramer`` decides when it is complete and the reply is returned the
moment its closing brace arrives, not after an idle timeout. pyserial's read timeout
returns short instead of raising; here a short read past the deadline becomes
``ReadTimeout``, and a reply that started and then stopped for ``inter_byte_timeout``
becomes ``ReadError`` (cut off) without waiting for the deadline. Any pyserial URL
works: a device path, ``COM3``, ``socket://`` and ``rfc2217://`` (serial-over-Ethernet
converters), ``loop://``.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from .._exceptions import ConfigError, ConnectError, ReadError, ReadTimeout, WriteError
from ..protocol import JsonFramer
from .base import AsyncTransport, OnSent, Transport

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "DEFAULT_BAUDRATE",
    "DEFAULT_INTER_BYTE_TIMEOUT",
    "AsyncSerialTransport",
    "SerialTransport",
    "serial_port_from_url",
]

DEFAULT_BAUDRATE = 115200
# Longest single blocking read, so a deadline is noticed at most this late. Fixed:
# changing pyserial's timeout reconfigures the port (tcsetattr) on every call.
_POLL = 0.05
# Once a reply has started, how long the line may stay quiet before the reply is
# taken as cut off. A terminal composes its reply, then sends it in one go: at
# 115200 baud (11520 bytes/s with 8N1) a whole reply (under 1 KiB) is on the wire in
# under 100 ms, and even at 9600 baud bytes follow each other by about 1 ms. A USB
# adapter's latency timer (16 ms) and a converter's packetising add tens of ms. So
# 2 s of silence inside a reply is never a slow terminal but a pulled cable, a
# terminal that reset or a converter that lost its link, and waiting out the rest
# of the timeout (180 s for a sale) would only keep the cashier waiting for nothing.
# The silence before the first byte (the customer paying) is not bounded by this.
DEFAULT_INTER_BYTE_TIMEOUT = 2.0


def serial_port_from_url(url: str) -> tuple[str, int]:
    """Split an ecrlink serial URL into a pyserial port/URL and a baud rate.

    ``serial:///dev/ttyUSB0``, ``serial:/dev/ttyUSB0``, ``serial:COM3`` and a bare
    device path give the device; ``?baudrate=9600`` overrides 115200. ``socket://``,
    ``rfc2217://`` and ``loop://`` URLs pass through to pyserial unchanged.
    """
    baudrate = DEFAULT_BAUDRATE
    if url.startswith(("socket://", "rfc2217://", "loop://", "spy://", "alt://")):
        return url, baudrate
    if url.startswith("serial:"):
        parts = urlsplit(url)
        port = (parts.netloc + parts.path) if parts.netloc else parts.path
        for key, value in parse_qsl(parts.query):
            if key in ("baudrate", "baud"):
                if not value.isdigit():
                    raise ConfigError(f"terminal URL: baudrate must be a number, got {value!r}")
                baudrate = int(value)
            else:
                raise ConfigError(f"terminal URL: unknown serial option {key!r}")
    else:
        port = url
    if not port:
        raise ConfigError(f"terminal URL: no serial device in {url!r}")
    return port, baudrate


def _gap_seconds(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError("inter_byte_timeout: must be a number of seconds")
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError("inter_byte_timeout: must be a positive, finite number of seconds")
    return float(value)


class SerialTransport(Transport):
    """Blocking serial transport; the port is opened on first use and kept open.

    ``inter_byte_timeout``: once a reply has started, the longest silence before it
    is taken as cut off (``ReadError``); see ``DEFAULT_INTER_BYTE_TIMEOUT``.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 5.0,
        inter_byte_timeout: float = DEFAULT_INTER_BYTE_TIMEOUT,
    ) -> None:
        self.url = url
        self.port, self.baudrate = serial_port_from_url(url)
        self.connect_timeout = connect_timeout
        self.inter_byte_timeout = _gap_seconds(inter_byte_timeout)
        self._serial: Any = None
        self._lock = threading.Lock()

    def _open(self) -> Any:
        # pyserial is imported where a port is used, never at module level: on POSIX
        # it imports termios and fcntl, and every ecrlink command (HTTP ones too)
        # imports this module through the client.
        import serial

        if self._serial is None:
            try:
                self._serial = serial.serial_for_url(
                    self.port,
                    baudrate=self.baudrate,
                    bytesize=serial.EIGHTBITS,
                    parity=serial.PARITY_NONE,
                    stopbits=serial.STOPBITS_ONE,
                    timeout=_POLL,
                    write_timeout=self.connect_timeout,
                )
            except (serial.SerialException, OSError, ValueError) as exc:
                raise ConnectError(f"{self.url}: cannot open the serial port ({exc})") from exc
        return self._serial

    def exchange(self, line: str, *, timeout: float, on_sent: OnSent | None = None) -> bytes:
        """Send ``line``, return the raw reply; see ``Transport.exchange``."""
        with self._lock:
            port = self._open()
            self._discard_input(port)
            if on_sent is not None:
                on_sent()
            deadline = time.monotonic() + timeout
            self._write(port, line)
            return self._read_reply(port, deadline, timeout)

    def _discard_input(self, port: Any) -> None:
        """Drop bytes left over from an exchange that timed out: they are not our reply.
        Nothing is written yet, so a port failing here is a ``ConnectError``."""
        import serial  # see _open

        try:
            port.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            self._drop()
            raise ConnectError(f"{self.url}: serial port failed ({exc}); nothing was sent") from exc

    def _write(self, port: Any, line: str) -> None:
        import serial  # see _open

        try:
            port.write(line.encode("ascii"))
            port.flush()
        except serial.SerialTimeoutException as exc:
            self._drop()
            raise WriteError(f"{self.url}: writing the request timed out") from exc
        except (serial.SerialException, OSError) as exc:
            self._drop()
            raise WriteError(f"{self.url}: writing the request failed ({exc})") from exc

    def _read_reply(self, port: Any, deadline: float, timeout: float) -> bytes:
        import serial  # see _open

        framer = JsonFramer()
        last_byte_at = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= deadline:
                got = len(framer.pending)
                raise ReadTimeout(
                    f"{self.url}: no complete reply within {timeout:g} s ({got} bytes received)"
                )
            if now - last_byte_at >= self.inter_byte_timeout:
                self._check_not_cut(framer)
            try:
                chunk = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError) as exc:
                self._drop()
                raise ReadError(f"{self.url}: serial line failed ({exc})") from exc
            if chunk:
                last_byte_at = time.monotonic()
                frames = framer.feed(chunk)
                if frames:
                    return frames[0]

    def _check_not_cut(self, framer: JsonFramer) -> None:
        """The line has been quiet for the gap: a started reply will not be finished.
        Before any ``{`` the terminal is still working (the customer paying): wait on."""
        pending = len(framer.pending)
        if pending:
            raise ReadError(
                f"{self.url}: reply cut off after {pending} bytes: the line went quiet "
                f"for {self.inter_byte_timeout:g} s"
            )

    def _drop(self) -> None:
        import serial  # see _open

        if self._serial is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._serial.close()
            self._serial = None

    def close(self) -> None:
        with self._lock:
            self._drop()


class AsyncSerialTransport(AsyncTransport):
    """Serial for asyncio: the blocking transport in a worker thread.

    pyserial has no asyncio API and ``loop://``/``socket://`` ports have no usable
    file descriptor, so a thread is the one way that works for every URL. asyncio is
    imported in the methods: the blocking client imports this module too.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 5.0,
        inter_byte_timeout: float = DEFAULT_INTER_BYTE_TIMEOUT,
    ) -> None:
        self._sync = SerialTransport(
            url, connect_timeout=connect_timeout, inter_byte_timeout=inter_byte_timeout
        )

    async def exchange(
        self, line: str, *, timeout: float, on_sent: OnSent | None = None
    ) -> bytes:
        """Send ``line``, return the raw reply; see ``Transport.exchange``."""
        import asyncio

        hook = None if on_sent is None else _on_loop(asyncio.get_running_loop(), on_sent)
        return await asyncio.to_thread(self._sync.exchange, line, timeout=timeout, on_sent=hook)

    async def aclose(self) -> None:
        """Close the port (in the worker thread: closing may block)."""
        import asyncio

        await asyncio.to_thread(self._sync.close)


def _on_loop(loop: asyncio.AbstractEventLoop, on_sent: OnSent) -> Callable[[], None]:
    """``on_sent`` run on the event loop's thread, as the HTTP transport runs it, while
    the worker thread waits: the request must not leave before it has returned, and
    if it raises, the worker raises it and writes nothing."""
    import asyncio

    async def call() -> None:
        on_sent()

    def hook() -> None:
        asyncio.run_coroutine_threadsafe(call(), loop).result()

    return hook
