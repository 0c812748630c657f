"""``Simulator``: one or many simulated terminals, served from a background thread.

The simulator owns an asyncio event loop in a thread of its own, so a test (or a
load script) drives it with ordinary blocking clients::

    with Simulator() as sim:
        with Terminal(sim.http_url) as pos:
            pos.sale(150_000)
        assert sim.ledger.transactions[-1].amount == 150_000
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from .._exceptions import ConfigError
from ..protocol import VIETNAM_TIME
from ..transports import terminal_key
from .http import HttpFrontEnd
from .ledger import Identity, Ledger, TransactionRecord
from .outcomes import Plan
from .serial import SerialFrontEnd, SerialLine
from .serial_port import SerialPortFrontEnd, port_url
from .state import StateStore, TerminalState
from .statement import write_statement
from .terminal import Settings, SimulatedTerminal

__all__ = ["DEFAULT_MID", "DEFAULT_TID", "Simulator"]

DEFAULT_TID = "31002095"
DEFAULT_MID = "000000100091555"

T = TypeVar("T")


def _vietnam_now() -> datetime:
    return datetime.now(VIETNAM_TIME)


def _port_names(
    ports: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
) -> list[str]:
    """``serial_port`` as a list of names: each non-empty, none twice."""
    if ports is None:
        return []
    items = [ports] if isinstance(ports, str | os.PathLike) else list(ports)
    names: list[str] = []
    seen: set[str] = set()
    for item in items:
        name = os.fspath(item) if isinstance(item, str | os.PathLike) else None
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"serial_port: each port must be a non-empty name, got {item!r}")
        key = terminal_key(port_url(name))  # COM5 and com5 are one port
        if key in seen:
            raise ConfigError(f"serial_port: {name} given twice; one terminal per port")
        seen.add(key)
        names.append(name)
    return names


def _identities(count: int, tid: str, mid: str, seed: int) -> list[Identity]:
    if not (len(tid) == 8 and tid.isdigit()):
        raise ConfigError(f"tid must be 8 digits, got {tid!r}")
    if not (len(mid) == 15 and mid.isdigit()):
        raise ConfigError(f"mid must be 15 digits, got {mid!r}")
    if int(tid) + count > 10**8:
        raise ConfigError("tid + number of terminals would not fit 8 digits")
    out = []
    for i in range(count):
        terminal_id = f"{int(tid) + i:08d}"
        # Ingenico serials seen in captures look like 10079CT70096224 (15 characters).
        out.append(Identity(terminal_id, mid, f"10079CT7{int(terminal_id) % 10**7:07d}", seed))
    return out


class Simulator:
    """Simulated Web ECR terminals over HTTP and/or serial lines.

    ``http`` is ``(host, port)``; with ``terminals=N`` the terminals listen on N
    consecutive ports from ``port`` (or N free ports if ``port`` is 0); ``None``
    disables HTTP. ``serial`` is a symlink path to publish the pty under (the
    terminal ``i >= 1`` gets ``PATH-<i+1>``), ``True`` for a pty without a symlink,
    or ``None``; POSIX only. ``serial_port`` serves on existing ports instead, one
    per terminal in order: a name or a list of names (``"COM5"``, one end of a
    com0com pair on Windows, whose other end the register opens; ``/dev/ttyUSB1``;
    ``socket://…``); a terminal beyond the list has HTTP only. ``state_file`` keeps
    the batches across restarts. ``card_delay`` is how long the customer takes (0:
    instant); ``bank_delay`` the time between the bank's answer and the reply;
    ``no_answer_timeout`` the terminal's own timer for a request it never answers.
    ``statement`` is a CSV path rewritten on each settlement and at stop. ``clock``
    returns the current time (aware).

    Three behaviours the protocol leaves open, defaulting to the document's samples
    and real terminals: ``firmware`` (``"v201"``: no requestId/clientId inside a
    sale's or ``last trans``'s ``transInfo``; ``"echo"``: the original ones repeated
    there), ``on_hangup`` (``"finish"``: an ECR hanging up during the card wait
    changes nothing, the sale completes and its reply is lost; ``"cancel"``: the
    sale is canceled and nothing charged) and ``busy_last_trans`` (``"refuse"``:
    busy while a transaction is in progress; ``"answer"``: ``last trans`` during a
    sale gets the previous successful transaction).
    """

    def __init__(
        self,
        http: tuple[str, int] | None = ("127.0.0.1", 0),
        serial: str | os.PathLike[str] | bool | None = None,
        *,
        serial_port: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        state_file: str | os.PathLike[str] | None = None,
        card_delay: float = 0.0,
        bank_delay: float = 0.0,
        no_answer_timeout: float = 3.0,
        terminals: int = 1,
        baud_pacing: bool = False,
        idle_gap: float = 0.05,
        statement: str | os.PathLike[str] | None = None,
        statement_open_batch: bool = False,
        seed: int = 0,
        clock: Callable[[], datetime] | None = None,
        tid: str = DEFAULT_TID,
        mid: str = DEFAULT_MID,
        head_timeout: float = 10.0,
        firmware: str = "v201",
        on_hangup: str = "finish",
        busy_last_trans: str = "refuse",
    ) -> None:
        if isinstance(terminals, bool) or not isinstance(terminals, int) or terminals < 1:
            raise ConfigError("terminals must be a whole number >= 1")
        ports = _port_names(serial_port)
        if ports and serial not in (None, False):
            raise ConfigError(
                "give serial=PATH (a new pty) or serial_port=NAME (an existing port), not both"
            )
        if http is None and serial in (None, False) and not ports:
            raise ConfigError("give http=(host, port), serial=PATH or serial_port=NAME")
        if len(ports) > terminals:
            raise ConfigError(
                f"serial_port: {len(ports)} ports for {terminals} terminal(s); "
                "give at most one port per terminal"
            )
        if http is None and ports and len(ports) < terminals:
            raise ConfigError(
                f"serial_port: {len(ports)} port(s) for {terminals} terminals and no HTTP; "
                "give one port per terminal, or HTTP too"
            )
        self._http = http
        self._serial = serial
        self._serial_ports = ports
        self._settings: dict[str, float | str] = {
            "card_delay": card_delay,
            "bank_delay": bank_delay,
            "no_answer_timeout": no_answer_timeout,
            "firmware": firmware,
            "on_hangup": on_hangup,
            "busy_last_trans": busy_last_trans,
        }
        Settings().update(self._settings)  # validate now, not in the thread
        self._identities = _identities(terminals, tid, mid, seed)
        self._store = StateStore(state_file) if state_file is not None else None
        self._statement = Path(statement) if statement is not None else None
        self._statement_open_batch = statement_open_batch
        self._baud_pacing = baud_pacing
        self._idle_gap = idle_gap
        self._head_timeout = head_timeout
        self._clock = clock or _vietnam_now
        self._slots: list[TerminalState] = []
        self._terminals: list[SimulatedTerminal] = []
        self._http_ends: list[HttpFrontEnd] = []
        self._serial_ends: list[SerialLine] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle ------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving; return once every port listens (raises if one cannot)."""
        if self._loop is not None:
            raise ConfigError("the simulator is already running")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name="ecrlink-simulator", daemon=True
        )
        self._thread.start()
        try:
            self._call(self._astart())
        except BaseException:
            self._shutdown_loop()
            raise
        return self

    def stop(self) -> None:
        """Stop serving, save the state, write the statement, remove the symlinks."""
        if self._loop is None:
            return
        try:
            self._call(self._astop())
        finally:
            self._shutdown_loop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _shutdown_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        loop.close()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        if self._loop is None:
            coro.close()
            raise ConfigError("the simulator is not running; use start() or a with block")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _astart(self) -> None:
        self._terminals = []
        self._http_ends = []
        self._serial_ends = []
        if self._store is not None:
            self._slots = self._store.load(self._identities)
            self._store.attach(lambda: self._slots)
            self._store.save_now()
        else:
            self._slots = [TerminalState(Ledger(identity)) for identity in self._identities]
        on_settle = self._write_statement_now if self._statement is not None else None
        for index, slot in enumerate(self._slots):
            settings = Settings()
            settings.update(self._settings)
            self._terminals.append(
                SimulatedTerminal(
                    index, slot, settings=settings, clock=self._clock,
                    store=self._store, on_settle=on_settle,
                )
            )
        try:
            await self._open_links()
        except BaseException:
            await self._astop()
            raise

    async def _open_links(self) -> None:
        for index, terminal in enumerate(self._terminals):
            if self._http is not None:
                host, port = self._http
                front = HttpFrontEnd(
                    terminal, host, port + index if port else 0,
                    head_timeout=self._head_timeout,
                )
                self._http_ends.append(front)
                await front.start()
            serial_end: SerialLine | None = None
            if index < len(self._serial_ports):
                serial_end = SerialPortFrontEnd(
                    terminal, self._serial_ports[index],
                    idle_gap=self._idle_gap, baud_pacing=self._baud_pacing,
                )
            elif self._serial not in (None, False):
                link: str | None = None
                if not isinstance(self._serial, bool):
                    base = os.fspath(self._serial)
                    link = base if index == 0 else f"{base}-{index + 1}"
                serial_end = SerialFrontEnd(
                    terminal, link, idle_gap=self._idle_gap, baud_pacing=self._baud_pacing
                )
            if serial_end is not None:
                self._serial_ends.append(serial_end)
                await serial_end.start()

    async def _astop(self) -> None:
        for http_end in self._http_ends:
            await http_end.close()
        for serial_end in self._serial_ends:
            await serial_end.close()
        for terminal in self._terminals:
            await terminal.close()
        if self._store is not None and self._slots:
            await asyncio.to_thread(self._store.save_now)
        if self._statement is not None and self._slots:
            await self._write_statement_now()
        self._http_ends.clear()
        self._serial_ends.clear()

    # --- where it listens -------------------------------------------------------------

    @property
    def http_url(self) -> str:
        """``http://host:port`` of the first terminal."""
        return self.http_urls[0]

    @property
    def http_urls(self) -> list[str]:
        """The HTTP URL of every terminal, in order."""
        if not self._http_ends:
            raise ConfigError("HTTP is not enabled or the simulator is not running")
        return [front.url for front in self._http_ends]

    @property
    def serial_url(self) -> str:
        """The ecrlink URL of the first terminal's serial port (``serial:///...``)."""
        return self.serial_urls[0]

    @property
    def serial_urls(self) -> list[str]:
        """The serial URL of every terminal with one, in order.

        For a pty, the URL the register opens. For ``serial_port``, the port the
        simulator serves (``serial:COM5``): the register opens the other end of the pair.
        """
        if not self._serial_ends:
            raise ConfigError("serial is not enabled or the simulator is not running")
        return [front.url for front in self._serial_ends]

    @property
    def serial_devices(self) -> list[str]:
        """The device of every terminal's serial line: ``/dev/pts/N`` of a pty, or the
        port's name (``COM5``)."""
        return [front.device for front in self._serial_ends]

    @property
    def serial_ports(self) -> list[str]:
        """The ``serial_port`` names, as given (empty when serving on ptys)."""
        return list(self._serial_ports)

    # --- the terminals ------------------------------------------------------------------

    @property
    def terminals(self) -> Sequence[SimulatedTerminal]:
        """Every terminal, in port order."""
        return tuple(self._terminals)

    def terminal(self, index: int = 0) -> SimulatedTerminal:
        """Terminal ``index`` (0-based)."""
        if not self._terminals:
            raise ConfigError("the simulator is not running")
        return self._terminals[index]

    @property
    def ledger(self) -> Ledger:
        """The first terminal's ledger: every transaction it processed."""
        return self.terminal(0).ledger

    def script(self, outcomes: Iterable[str | Plan], terminal: int = 0) -> None:
        """Queue outcomes for the next sales (``approve``, ``decline:51``, ...)."""
        self.terminal(terminal).script.extend(outcomes)

    def configure(self, terminal: int | None = None, **values: float | str) -> None:
        """Change settings while running, on every terminal or on ``terminal``.

        ``card_delay``, ``bank_delay``, ``no_answer_timeout`` (seconds), ``firmware``
        (``"v201"``/``"echo"``), ``on_hangup`` (``"finish"``/``"cancel"``),
        ``busy_last_trans`` (``"refuse"``/``"answer"``); ``ConfigError`` names a bad
        one and changes nothing.
        """
        targets = self._terminals if terminal is None else [self.terminal(terminal)]
        Settings().update(values)
        for target in targets:
            target.settings.update(values)

    def state(self, terminal: int = 0) -> dict[str, Any]:
        """What ``GET /_sim/state`` answers, for one terminal."""
        target = self.terminal(terminal)

        async def read() -> dict[str, Any]:
            return target.state()

        return self._call(read())

    def reset(self, terminal: int = 0) -> None:
        """Start terminal ``terminal`` afresh (batch 1, nothing recorded, no script)."""
        self._call(self.terminal(terminal).reset())

    # --- the bank's side ---------------------------------------------------------------

    def _statement_records(
        self, include_open_batch: bool
    ) -> list[tuple[Identity, TransactionRecord]]:
        pairs: list[tuple[Identity, TransactionRecord]] = []
        for terminal in self._terminals:
            ledger = terminal.ledger
            records = ledger.transactions if include_open_batch else ledger.settled
            pairs.extend((ledger.identity, r) for r in records)
        return pairs

    async def _write_statement_now(self) -> None:
        assert self._statement is not None
        records = self._statement_records(self._statement_open_batch)
        await asyncio.to_thread(write_statement, self._statement, records)

    def write_statement(
        self, path: str | os.PathLike[str], *, include_open_batch: bool = False
    ) -> int:
        """Write the acquirer's CSV statement of every terminal; return the row count.

        Settled batches only, unless ``include_open_batch``.
        """

        async def collect() -> list[tuple[Identity, TransactionRecord]]:
            return self._statement_records(include_open_batch)

        return write_statement(path, self._call(collect()))
