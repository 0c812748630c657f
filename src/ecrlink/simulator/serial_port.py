"""The terminal's RS232 side on an existing port named by the user (``COM5``).

On Windows there are no pseudo-terminals: an integrator pairs two virtual COM ports
with com0com (``COM5`` <-> ``COM6``), the simulator serves on one end and the
register opens the other (``serial:COM6``). Anything pyserial's ``serial_for_url``
opens works the same way: ``/dev/ttyUSB1`` (a null-modem cable to another PC),
``/dev/pts/N`` or a socat link on Linux, ``socket://`` and ``rfc2217://`` URLs. The
port is opened at 115200 8N1 unless the name says otherwise
(``serial:COM5?baudrate=9600``, the client's URL form).

Framing, dispatch, busy handling and pacing are :class:`~.serial.SerialLine`'s, as
for the pty; only the byte I/O is here. Its shape, and why: one reader thread per
port, blocking in ``read(1)`` with a short timeout, then taking what else is
waiting, and handing the bytes to the event loop with ``call_soon_threadsafe``.
pyserial gives no ``fileno()`` to select on for a Windows COM port or its URL
handlers, so the event loop cannot watch the port itself; a thread that returns at
the first byte keeps the idle gap measured on the loop within the hand-off's
latency (well under a millisecond), not the poll's. The poll (50 ms) only bounds how
long ``close`` waits for the thread. Writes run in ``asyncio.to_thread`` with a
write timeout, so a port nobody reads never stalls the loop, and the shared write
lock still keeps each reply whole. pyserial reads and writes one port from two
threads safely (separate file operations on POSIX, separate overlapped I/O on
Windows, ``recv``/``sendall`` on a socket).

A port that fails (a USB adapter pulled, the com0com driver restarted, socat gone)
is closed and reopened every second until it is back or the simulator stops; the
terminal itself, its batch and any sale in progress, is untouched.

pyserial is imported where a port is opened, never at module level: on POSIX it
imports ``termios``, and this module is imported with the simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from typing import Any

from .._exceptions import ConfigError
from ..transports import serial_port_from_url
from .serial import SerialLine
from .terminal import SimulatedTerminal

__all__ = ["SerialPortFrontEnd", "port_url"]

log = logging.getLogger("ecrlink.simulator")

_POLL = 0.05  # longest blocking read: how late the reader notices close()
_WRITE_TIMEOUT = 5.0  # a reply nobody reads for this long is dropped
_REOPEN_PAUSE = 1.0  # between attempts to reopen a failed port
_JOIN_TIMEOUT = 5.0


def port_url(name: str) -> str:
    """The ecrlink URL of a port: ``serial:COM5``, ``serial:///dev/ttyUSB1``, or the
    pyserial URL itself (``socket://host:port``)."""
    if "://" in name:
        return name
    return f"serial://{name}" if name.startswith("/") else f"serial:{name}"


class SerialPortFrontEnd(SerialLine):
    """Serve one terminal on the existing serial port ``port`` (name or URL).

    ``port`` may be a device (``COM5``, ``/dev/ttyUSB1``), a pyserial URL
    (``socket://…``, ``rfc2217://…``) or an ecrlink serial URL (``serial:COM5``,
    ``serial:///dev/ttyUSB1?baudrate=9600``); ``ConfigError`` if it is malformed
    (at once) or cannot be opened (from :meth:`start`).
    """

    def __init__(
        self,
        terminal: SimulatedTerminal,
        port: str | os.PathLike[str],
        *,
        idle_gap: float = 0.05,
        baud_pacing: bool = False,
    ) -> None:
        name, baudrate = serial_port_from_url(os.fspath(port))
        super().__init__(terminal, idle_gap=idle_gap, baud_pacing=baud_pacing, baudrate=baudrate)
        self.device = name
        self._port: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        """The ecrlink URL of the port served (the register opens its pair)."""
        return port_url(self.device)

    async def start(self) -> None:
        """Open the port and start the reader thread."""
        self._port = await asyncio.to_thread(self._open)
        self._thread = threading.Thread(
            target=self._read_forever,
            args=(asyncio.get_running_loop(),),
            name=f"ecrlink-simulator-{self.device}",
            daemon=True,
        )
        self._thread.start()

    async def close(self) -> None:
        """Stop the reader, cancel the requests in progress, close the port."""
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, _JOIN_TIMEOUT)
            self._thread = None
        await self._stop_requests()
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()

    def _open(self) -> Any:
        import serial

        try:
            return serial.serial_for_url(
                self.device,
                baudrate=self.baudrate,
                bytesize=serial.EIGHTBITS,
                parity=serial.PARITY_NONE,
                stopbits=serial.STOPBITS_ONE,
                timeout=_POLL,
                write_timeout=_WRITE_TIMEOUT,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ConfigError(f"cannot open serial port {self.device} ({exc})") from exc

    # --- the reader thread ----------------------------------------------------------------

    def _read_forever(self, loop: asyncio.AbstractEventLoop) -> None:
        import serial

        port = self._port
        while not self._stopping.is_set():
            if port is None:
                port = self._reopen()
                continue
            try:
                data = port.read(1)  # returns at the first byte, or empty after _POLL
                waiting = port.in_waiting if data else 0
                if waiting:
                    data += port.read(waiting)
            except (serial.SerialException, OSError, ValueError) as exc:
                if self._stopping.is_set():
                    break
                log.warning(
                    "%s serial: %s failed (%s); reopening it every %g s",
                    self.terminal.name, self.device, exc, _REOPEN_PAUSE,
                )
                self._port = None
                with contextlib.suppress(Exception):
                    port.close()
                port = None
                continue
            if data:
                with contextlib.suppress(RuntimeError):  # the loop has gone: stopping
                    loop.call_soon_threadsafe(self._feed, data)

    def _reopen(self) -> Any:
        if self._stopping.wait(_REOPEN_PAUSE):
            return None
        try:
            port = self._open()
        except ConfigError:
            return None
        self._port = port
        log.warning("%s serial: %s open again", self.terminal.name, self.device)
        return port

    # --- writing ----------------------------------------------------------------------------

    async def _write(self, data: bytes) -> None:
        import serial

        port = self._port
        if port is None:
            log.info("%s serial: %s is not open, reply dropped", self.terminal.name, self.device)
            return
        try:
            await asyncio.to_thread(port.write, data)
        except serial.SerialTimeoutException:
            log.info("%s serial: nobody reads the port, reply dropped", self.terminal.name)
        except (serial.SerialException, OSError, ValueError) as exc:
            log.info("%s serial: reply not written (%s)", self.terminal.name, exc)
