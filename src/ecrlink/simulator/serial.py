"""The terminal's RS232 side: request framing and dispatch, and the pty front end.

Two front ends serve the same wire: :class:`SerialFrontEnd` here, on a fresh
pseudo-terminal, and :class:`~ecrlink.simulator.serial_port.SerialPortFrontEnd`, on
an existing port named by the user (one end of a com0com pair on Windows). They
share :class:`SerialLine`, the one implementation of everything but the byte I/O.

The wire has no framing (spec §3): a request ends when the line has been idle for
``idle_gap`` seconds. A reply may be paced at 115200 baud, 8N1 (10 bit times per
byte), to reproduce the real round-trip time.

There is no hang-up on a serial line, so a request the terminal never answers keeps
it deaf until its own timer expires, and a second request while one is in progress
is dropped without a reply. The port is read all the time, even while a request is
in progress, and every request is handled as its own task: that is what lets a
``last trans`` be answered during a sale (``busy_last_trans=answer``); replies never
interleave, each is written whole under one lock.

The pty: ``os.openpty()`` gives a master (the terminal's end, read with the event
loop) and a slave (``/dev/pts/N``, opened by the ECR like a COM port), published
under a stable symlink if asked.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path

from .._exceptions import ConfigError
from .replies import error_body
from .terminal import MAX_REQUEST_BYTES, AnswerKind, SimulatedTerminal

__all__ = [
    "BAUDRATE", "NO_PTY", "SerialFrontEnd", "SerialLine", "open_pty", "pty_available",
]

log = logging.getLogger("ecrlink.simulator")

BAUDRATE = 115200
_BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit
_PACE_CHUNK = 32
_WRITE_TIMEOUT = 5.0

#: The one-line error where pseudo-terminals do not exist (Windows).
NO_PTY = (
    "serial simulation needs a POSIX pseudo-terminal; on Windows pair two ports with "
    "com0com and give one to --serial-port (e.g. --serial-port COM5, register on "
    "serial:COM6), or use HTTP"
)


def open_pty() -> tuple[int, int]:
    """A new pseudo-terminal in raw mode, as (master, slave); ``ConfigError`` if none.

    ``tty`` (and the ``termios`` under it) is imported here, not at module level:
    Windows has neither, and every ``ecrlink`` command imports this module through
    the CLI's ``demo``, so a module-level import would break them all there.
    """
    try:
        import tty
    except ImportError as exc:
        raise ConfigError(NO_PTY) from exc
    openpty = getattr(os, "openpty", None)  # absent on Windows
    if openpty is None:
        raise ConfigError(NO_PTY)
    try:
        master, slave = openpty()
    except OSError as exc:  # e.g. a container without /dev/ptmx
        raise ConfigError(f"cannot open a pseudo-terminal ({exc})") from exc
    try:
        tty.setraw(slave)
    except BaseException:
        os.close(master)
        os.close(slave)
        raise
    return master, slave


def pty_available() -> bool:
    """True if a pseudo-terminal can actually be opened here (one is opened and closed)."""
    try:
        master, slave = open_pty()
    except (ConfigError, OSError):
        return False
    os.close(master)
    os.close(slave)
    return True


class SerialLine(abc.ABC):
    """What every serial front end shares: framing by idle gap, dispatch, replies.

    A subclass moves the bytes: it hands what it reads to :meth:`_feed` on the event
    loop, and implements :meth:`_write` (one chunk, errors logged, never raised),
    ``start``, ``close``, ``device`` and ``url``.
    """

    def __init__(
        self,
        terminal: SimulatedTerminal,
        *,
        idle_gap: float = 0.05,
        baud_pacing: bool = False,
        baudrate: int = BAUDRATE,
    ) -> None:
        self.terminal = terminal
        self.idle_gap = idle_gap
        self.baud_pacing = baud_pacing
        self.baudrate = baudrate
        self.device = ""
        self._buffer = bytearray()
        self._overflow = 0
        self._idle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._write_lock = asyncio.Lock()

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """The ecrlink URL of this port."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Open the port and start reading."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop reading, cancel the requests in progress, close the port."""

    @abc.abstractmethod
    async def _write(self, data: bytes) -> None:
        """Write one chunk; a failure is logged (the reply is lost), never raised."""

    async def _stop_requests(self) -> None:
        """Forget a half-read request and cancel those in progress."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- reading: a request ends at an idle gap --------------------------------------

    def _feed(self, data: bytes) -> None:
        """Bytes read from the line, on the event loop."""
        room = MAX_REQUEST_BYTES + 1 - len(self._buffer)
        if room > 0:
            self._buffer += data[:room]
        self._overflow += max(0, len(data) - max(room, 0))
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(self.idle_gap, self._on_idle)

    def _on_idle(self) -> None:
        self._idle = None
        line = bytes(self._buffer)
        self._buffer.clear()
        too_long = len(line) > MAX_REQUEST_BYTES
        if too_long:
            log.info(
                "%s serial: request of %d bytes refused",
                self.terminal.name, len(line) + self._overflow,
            )
        self._overflow = 0
        task = asyncio.ensure_future(self._process(line, too_long))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, line: bytes, too_long: bool) -> None:
        try:
            if too_long:
                if not self.terminal.busy:
                    await self._send(
                        error_body(f"request line longer than {MAX_REQUEST_BYTES} bytes")
                    )
                return
            answer = await self.terminal.handle(line.strip(b"\r\n\0 "))
            if answer.kind in (AnswerKind.REPLY, AnswerKind.ERROR, AnswerKind.TRUNCATED):
                await self._send(answer.body)
            # BUSY, LOST, SILENT: the serial line stays quiet.
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s serial: unexpected error", self.terminal.name)

    # --- writing, optionally at the real baud rate ------------------------------------------

    async def _send(self, data: bytes) -> None:
        async with self._write_lock:
            if not self.baud_pacing:
                await self._write(data)
                return
            per_byte = _BITS_PER_BYTE / self.baudrate
            start = time.monotonic()
            for offset in range(0, len(data), _PACE_CHUNK):
                chunk = data[offset : offset + _PACE_CHUNK]
                due = start + offset * per_byte
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._write(chunk)
            # The last byte leaves the UART only after its own bit times.
            rest = start + len(data) * per_byte - time.monotonic()
            if rest > 0:
                await asyncio.sleep(rest)


class SerialFrontEnd(SerialLine):
    """Serve one terminal on a fresh pty; ``path`` is where the ECR opens it."""

    def __init__(
        self,
        terminal: SimulatedTerminal,
        link: str | os.PathLike[str] | None = None,
        *,
        idle_gap: float = 0.05,
        baud_pacing: bool = False,
        baudrate: int = BAUDRATE,
    ) -> None:
        super().__init__(
            terminal, idle_gap=idle_gap, baud_pacing=baud_pacing, baudrate=baudrate
        )
        self.link = Path(link) if link is not None else None
        self._master = -1
        self._slave = -1

    @property
    def path(self) -> str:
        """What the ECR opens: the symlink if one was asked for, else ``/dev/pts/N``."""
        return str(self.link) if self.link is not None else self.device

    @property
    def url(self) -> str:
        """The ecrlink URL of this port, e.g. ``serial:///dev/pts/5``."""
        path = self.path
        return f"serial://{path}" if path.startswith("/") else f"serial:{path}"

    async def start(self) -> None:
        """Create the pty, publish its symlink, start reading."""
        self._master, self._slave = open_pty()
        # The slave stays open here too: with no process holding it, reads on the
        # master fail with EIO each time the ECR closes its port.
        self.device = os.ttyname(self._slave)
        os.set_blocking(self._master, False)
        if self.link is not None:
            try:
                if self.link.is_symlink() or self.link.exists():
                    if not self.link.is_symlink():
                        raise ConfigError(f"{self.link} exists and is not a symlink")
                    self.link.unlink()
                self.link.symlink_to(self.device)
            except OSError as exc:
                self._close_fds()
                raise ConfigError(f"cannot publish the pty as {self.link} ({exc})") from exc
        asyncio.get_running_loop().add_reader(self._master, self._on_readable)

    async def close(self) -> None:
        """Stop reading, remove the symlink, close the pty."""
        if self._master >= 0:
            asyncio.get_running_loop().remove_reader(self._master)
        await self._stop_requests()
        if self.link is not None:
            with contextlib.suppress(OSError):
                if self.link.is_symlink() and os.readlink(self.link) == self.device:
                    self.link.unlink()
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # EIO: nobody on the other end right now; nothing to read
        if data:
            self._feed(data)

    async def _write(self, data: bytes) -> None:
        view = memoryview(data)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _WRITE_TIMEOUT
        while view:
            try:
                view = view[os.write(self._master, view) :]
                continue
            except BlockingIOError:
                pass
            except OSError as exc:
                log.info("%s serial: reply not written (%s)", self.terminal.name, exc)
                return
            # The pty's buffer is full: nobody is reading the port; wait a little.
            if loop.time() > deadline:
                log.info("%s serial: nobody reads the port, reply dropped", self.terminal.name)
                return
            ready: asyncio.Future[None] = loop.create_future()

            def wake(ready: asyncio.Future[None] = ready) -> None:
                if not ready.done():
                    ready.set_result(None)

            loop.add_writer(self._master, wake)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ready, 0.1)
            finally:
                loop.remove_writer(self._master)
