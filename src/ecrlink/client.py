"""``Terminal`` and ``AsyncTerminal``: drive one card terminal, safely.

Every command takes the terminal's lock (one transaction per terminal across threads
and processes), is written to the journal as pending before its first byte is sent,
and ends in the journal with its answer. A sale or void whose answer is lost or
unreadable becomes *in doubt* and is resolved at once with ``last trans``; the caller
always gets one answer: approved, declined, canceled, or unknown (never "declined"
for a timeout).

Every decision lives in ``ecrlink.payment``: the flow of a command is written once
there, as generators that yield the effects they need (an exchange, a pause, a
journal call). ``Terminal`` carries them out blocking; ``AsyncTerminal`` with
``await``, running journal calls and the lock wait in worker threads so that the event
loop never blocks on SQLite or fsync, and staying cancel-safe: a cancelled call
releases the lock and leaves its payment written down, in doubt if it may have left.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from ._exceptions import ConfigError
from .journal import Journal, TerminalLock, default_data_dir, open_journal
from .journal.lock import Lock
from .payment.flow import Exchange, Flow, Flows, Pause, Recovered, Settings, Store
from .protocol import LastTrans, Request, Result, Sale, Settle, Void, check_field
from .transports import Transport, open_transport, terminal_key

__all__ = ["AsyncTerminal", "JournalOption", "RequestIds", "Terminal"]

if TYPE_CHECKING:
    from .async_client import AsyncTerminal

wire_log = logging.getLogger("ecrlink.wire")
log = logging.getLogger("ecrlink")

DEFAULT_CLIENT_ID = "ECRLINK"

JournalOption = Journal | str | os.PathLike[str] | bool | None
"""``True`` (default): ``$ECRLINK_JOURNAL`` if set, else the journal in the user's data
directory; a path, a ``postgresql://`` URL or a ``Journal``: that one; ``False``/``None``:
no journal (no recovery across crashes, no guard)."""

T = TypeVar("T")

OnRecovered = Callable[[list[Result]], None]
"""``on_recovered(results)``: what became of earlier open payments, told before a new
command starts."""


def _positive_seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name}: must be a number of seconds")
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name}: must be a positive, finite number of seconds")
    return float(value)


def _open_journal(option: JournalOption) -> Journal | None:
    if option is True:
        return open_journal()
    if option is False or option is None:
        return None
    if isinstance(option, Journal):
        return option
    return open_journal(option)


class RequestIds:
    """Unique request ids of at most 20 characters, across processes and restarts.

    Milliseconds since the epoch (11 hex digits) and 6 random hex digits; the
    random part is redrawn if a process asks twice in the same millisecond.
    """

    def __init__(self) -> None:
        self._last = ""
        self._lock = threading.Lock()

    def next(self) -> str:
        """A new request id, never the one returned just before."""
        with self._lock:
            while True:
                candidate = f"{time.time_ns() // 1_000_000:011x}{secrets.randbits(24):06x}"
                if candidate != self._last:
                    self._last = candidate
                    return candidate


class _TerminalBase:
    """What both clients share: settings, request building, the lock and the flows."""

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        timeout: float,
        connect_timeout: float,
        status_timeout: float,
        recovery_timeout: float,
        lock_timeout: float,
        transliterate: bool,
        journal: JournalOption,
        duplicate_window: float | None,
        on_recovered: OnRecovered | None,
    ) -> None:
        self.url = url
        self.on_recovered = on_recovered
        """Called with the results of earlier payments that a command settled before
        starting (a crash or Ctrl-C had left them open): show them to the cashier."""
        self.terminal = terminal_key(url)
        """The terminal's one name, however ``url`` is spelled: the lock and the journal
        key on it (see ``ecrlink.transports.identity``)."""
        self.client_id = check_field("client_id", client_id, allow_empty=False)
        self.timeout = _positive_seconds("timeout", timeout)
        self.connect_timeout = _positive_seconds("connect_timeout", connect_timeout)
        self.status_timeout = _positive_seconds("status_timeout", status_timeout)
        self.recovery_timeout = _positive_seconds("recovery_timeout", recovery_timeout)
        self.lock_timeout = _positive_seconds("lock_timeout", lock_timeout)
        self.transliterate = transliterate
        self.duplicate_window = (
            None if duplicate_window is None
            else _positive_seconds("duplicate_window", duplicate_window)
        )
        self.journal = _open_journal(journal)
        # A journal this terminal opened (from a name) is released with it; one handed
        # in as an object belongs to the caller.
        self._owns_journal = self.journal is not None and not isinstance(journal, Journal)
        lock_dir = (self.journal.path.parent if self.journal else default_data_dir()) / "locks"
        self._lock_dir: Path = lock_dir
        self._ids = RequestIds()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} client_id={self.client_id!r}>"

    # --- building requests ------------------------------------------------------------

    def _request_id(self, given: str | None) -> str:
        return self._ids.next() if given is None else given

    def _sale(
        self,
        amount: int,
        invoice: str | None,
        reference: str | None,
        fields: Mapping[int, str] | Sequence[str] | None,
        request_id: str | None,
    ) -> Sale:
        return Sale.build(
            amount,
            request_id=self._request_id(request_id),
            client_id=self.client_id,
            invoice=invoice,
            reference=reference,
            fields=fields,
            transliterate=self.transliterate,
        )

    def _void(self, receipt_no: int | str, request_id: str | None) -> Void:
        return Void(
            request_id=self._request_id(request_id),
            client_id=self.client_id,
            receipt_no=receipt_no,  # type: ignore[arg-type]  # normalised by Void itself
        )

    def _settle(self, confirm: bool, request_id: str | None) -> Settle:
        return Settle(
            request_id=self._request_id(request_id), client_id=self.client_id, confirm=confirm
        )

    def _last(self, request_id: str | None = None) -> LastTrans:
        return LastTrans(request_id=self._request_id(request_id), client_id=self.client_id)

    def _lock(self) -> Lock:
        # The journal's lock: a file lock beside a SQLite journal, an advisory lock in a
        # PostgreSQL one (registers on other PCs share it).
        if self.journal is not None:
            return self.journal.terminal_lock(self.terminal, wait=self.lock_timeout,
                                              directory=self._lock_dir)
        return TerminalLock(self._lock_dir, self.terminal, wait=self.lock_timeout)

    def _flows(self) -> Flows:
        # Built per call: the timeouts are plain attributes a caller may change.
        settings = Settings(
            terminal=self.terminal, timeout=self.timeout, status_timeout=self.status_timeout,
            recovery_timeout=self.recovery_timeout, journaled=self.journal is not None,
            duplicate_window=self.duplicate_window, connect_timeout=self.connect_timeout,
        )
        return Flows(settings, clock=_utc_now, new_last=self._last)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Terminal(_TerminalBase):
    """A blocking client for one terminal.

    ``url`` is ``http://host[:port]``, ``https://…``, ``serial:///dev/ttyUSB0``,
    ``serial:COM3``, ``socket://host:port`` or ``rfc2217://host:port``. ``timeout``
    is how long a sale or void may wait for the customer; ``connect_timeout`` bounds
    reaching the terminal; ``status_timeout`` bounds one ``last trans``;
    ``recovery_timeout`` bounds resolving an in-doubt payment (retrying ``last trans``
    while the terminal is busy); ``lock_timeout`` bounds waiting for another
    transaction on the same terminal. See ``JournalOption`` for ``journal``.
    ``duplicate_window`` is how long (seconds) an approved invoice (F3) blocks another
    sale for it, on any terminal of the journal; None: the current business day.
    ``on_recovered(results)`` is told what became of earlier payments left open (a
    crash, Ctrl-C) that a command settled with ``last trans`` before starting.

    >>> with Terminal("http://192.168.1.50") as pos:          # doctest: +SKIP
    ...     result = pos.sale(150_000, invoice="HD0001")
    ...     print(result.outcome, result.transaction.approval_code)
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        timeout: float = 180.0,
        connect_timeout: float = 5.0,
        status_timeout: float = 30.0,
        recovery_timeout: float = 60.0,
        lock_timeout: float = 30.0,
        transliterate: bool = False,
        journal: JournalOption = True,
        duplicate_window: float | None = None,
        tls_fingerprint: str | None = None,
        transport: Transport | None = None,
        on_recovered: OnRecovered | None = None,
    ) -> None:
        super().__init__(
            url, client_id=client_id, timeout=timeout, connect_timeout=connect_timeout,
            status_timeout=status_timeout, recovery_timeout=recovery_timeout,
            lock_timeout=lock_timeout, transliterate=transliterate, journal=journal,
            duplicate_window=duplicate_window, on_recovered=on_recovered,
        )
        self._transport = transport or open_transport(
            url, connect_timeout=self.connect_timeout, tls_fingerprint=tls_fingerprint
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the link to the terminal. A journal this terminal opened gives back its
        server connections (``Journal.release``: a PostgreSQL journal's would otherwise
        last until the process ends) and stays readable."""
        self._transport.close()
        if self._owns_journal and self.journal is not None:
            self.journal.release()

    # --- the I/O paths ---------------------------------------------------------------

    def _drive(self, flow: Flow[T]) -> T:
        """Run a flow: carry out the effects it yields, blocking."""
        try:
            step = next(flow)
            while True:
                try:
                    value: Any = None
                    if isinstance(step, Exchange):
                        value = self._transport.exchange(
                            step.line, timeout=step.timeout, on_sent=step.progress.mark_sent
                        )
                    elif isinstance(step, Store):
                        assert self.journal is not None
                        value = step.call(self.journal)
                    elif isinstance(step, Pause):
                        time.sleep(step.seconds)
                    elif isinstance(step, Recovered) and self.on_recovered is not None:
                        self.on_recovered(step.results)
                except BaseException as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(value)
        except StopIteration as done:
            result: T = done.value
            return result

    def send(
        self, request: Request, *, force: bool = False, allow_duplicate: bool = False
    ) -> Result:
        """Send one prepared request under the terminal's lock, journaled; see the class."""
        with self._lock():
            return self._drive(self._flows().send(request, force, allow_duplicate))

    def recover(self) -> list[Result]:
        """Resolve this terminal's pending and in-doubt payments with ``last trans``.

        Pending rows left by a crash become in doubt first. Returns one result per
        payment that was unresolved; those still unknown stay in doubt for the cashier.
        """
        if self.journal is None:
            return []
        with self._lock():
            return self._drive(self._flows().recover())

    def sale(
        self,
        amount: int,
        *,
        invoice: str | None = None,
        reference: str | None = None,
        fields: Mapping[int, str] | Sequence[str] | None = None,
        request_id: str | None = None,
        force: bool = False,
        allow_duplicate: bool = False,
    ) -> Result:
        """Charge ``amount`` VND; ``invoice`` travels as F3, ``reference`` as F5.

        Refused with ``InDoubtPending`` while an earlier payment on this terminal is in
        doubt, unless ``force``; with ``DuplicateInvoice`` when the journal shows this
        invoice approved within ``duplicate_window`` (any terminal), unless
        ``allow_duplicate``.
        """
        return self.send(
            self._sale(amount, invoice, reference, fields, request_id), force=force,
            allow_duplicate=allow_duplicate,
        )

    def void(self, receipt_no: int | str, *, request_id: str | None = None) -> Result:
        """Cancel the sale with this receipt number in the current batch."""
        return self.send(self._void(receipt_no, request_id))

    def settle(self, *, confirm: bool = True, request_id: str | None = None) -> Result:
        """Close the current batch (``settle|YES``; ``confirm=False`` sends ``NO``)."""
        return self.send(self._settle(confirm, request_id))

    def last_transaction(self, *, request_id: str | None = None) -> Result:
        """The terminal's most recent successful transaction (``last trans``)."""
        return self.send(self._last(request_id))


def __getattr__(name: str) -> Any:
    # AsyncTerminal lives in its own module so that a blocking program (and the
    # command line) never imports asyncio.
    if name == "AsyncTerminal":
        from .async_client import AsyncTerminal

        return AsyncTerminal
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
