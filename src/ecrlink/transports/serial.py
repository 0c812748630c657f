"""Web ECR over RS232, with pyserial.

The request line is written as-is, with no terminator; the reply has no framing
either, so ``JsonFramer`` decides when it is complete and the reply is returned the
moment its closing brace arrives, not after an idle timeout. pyserial's read timeout
returns short instead of raising; here a short read past the deadline becomes
``ReadTimeout``. Any pyserial URL works: a device path, ``COM3``, ``socket://`` and
``rfc2217://`` (serial-over-Ethernet converters), ``loop://``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import serial

from .._exceptions import ConfigError, ConnectError, ReadError, ReadTimeout, WriteError
from ..protocol import JsonFramer
from .base import AsyncTransport, Transport

__all__ = ["DEFAULT_BAUDRATE", "AsyncSerialTransport", "SerialTransport", "serial_port_from_url"]

DEFAULT_BAUDRATE = 115200
# Longest single blocking read, so a deadline is noticed at most this late. Fixed:
# changing pyserial's timeout reconfigures the port (tcsetattr) on every call.
_POLL = 0.05


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


class SerialTransport(Transport):
    """Blocking serial transport; the port is opened on first use and kept open."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        self.url = url
        self.port, self.baudrate = serial_port_from_url(url)
        self.connect_timeout = connect_timeout
        self._serial: Any = None
        self._lock = threading.Lock()

    def _open(self) -> Any:
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

    def exchange(self, line: str, *, timeout: float) -> bytes:
        with self._lock:
            port = self._open()
            try:
                # Bytes left over from an exchange that timed out are not our reply.
                port.reset_input_buffer()
                port.write(line.encode("ascii"))
                port.flush()
            except serial.SerialTimeoutException as exc:
                self._drop()
                raise WriteError(f"{self.url}: writing the request timed out") from exc
            except (serial.SerialException, OSError) as exc:
                self._drop()
                raise WriteError(f"{self.url}: writing the request failed ({exc})") from exc
            return self._read_reply(port, timeout)

    def _read_reply(self, port: Any, timeout: float) -> bytes:
        framer = JsonFramer()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                got = len(framer.pending)
                raise ReadTimeout(
                    f"{self.url}: no complete reply within {timeout:g} s ({got} bytes received)"
                )
            try:
                chunk = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError) as exc:
                self._drop()
                raise ReadError(f"{self.url}: serial line failed ({exc})") from exc
            if chunk:
                frames = framer.feed(chunk)
                if frames:
                    return frames[0]

    def _drop(self) -> None:
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
    file descriptor, so a thread is the one way that works for every URL.
    """

    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        self._sync = SerialTransport(url, connect_timeout=connect_timeout)

    async def exchange(self, line: str, *, timeout: float) -> bytes:
        return await asyncio.to_thread(self._sync.exchange, line, timeout=timeout)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._sync.close)
