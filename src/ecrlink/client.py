"""``Terminal`` and ``AsyncTerminal``: drive one card terminal, safely.

Every command takes the terminal's lock (one transaction per terminal across threads
and processes), is written to the journal as pending before its first byte is sent,
and ends in the journal with its answer. A sale or void whose answer is lost or
unreadable becomes *in doubt* and is resolved at once with ``last trans``; the caller
always gets one answer: approved, declined, canceled, or unknown (never "declined"
for a timeout).

Both classes share ``_TerminalBase``, which holds every decision and the whole flow of
a transaction as generators that yield the I/O they need; each class only drives
them, blocking or with ``await``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from ._exceptions import (
    AmountMismatch,
    ConfigError,
    ConnectError,
    ConnectTimeout,
    EcrError,
    InDoubtPending,
    RemoteProtocolError,
    TerminalBusy,
    TransportError,
)
from .journal import (
    Entry,
    Journal,
    ResolvedBy,
    State,
    TerminalLock,
    Verdict,
    default_data_dir,
    judge,
)
from .protocol import (
    LastTrans,
    Outcome,
    Request,
    Result,
    Sale,
    Settle,
    Void,
    check_answers,
    check_field,
    mask_card_numbers,
    parse_reply,
)
from .transports import AsyncTransport, Transport, open_async_transport, open_transport

__all__ = ["AsyncTerminal", "JournalOption", "Terminal"]

wire_log = logging.getLogger("ecrlink.wire")
log = logging.getLogger("ecrlink")

DEFAULT_CLIENT_ID = "ECRLINK"

JournalOption = Journal | str | os.PathLike[str] | bool | None
"""``True`` (default): the journal in the user's data directory; a path or a ``Journal``:
that one; ``False``/``None``: no journal (no recovery across crashes, no guard)."""

# Failures after which the terminal cannot have charged anything.
_NOT_SENT = (ConnectError, ConnectTimeout, TerminalBusy)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Exchange:
    """A flow's request: send ``line``, give back the raw reply (or throw the error)."""

    line: str
    timeout: float


@dataclass(frozen=True, slots=True)
class _Pause:
    """A flow's request: wait ``seconds`` before going on."""

    seconds: float


Flow = Generator[_Exchange | _Pause, bytes, T]


def _positive_seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name}: must be a number of seconds")
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name}: must be a positive, finite number of seconds")
    return float(value)


def _open_journal(option: JournalOption) -> Journal | None:
    if option is True:
        return Journal()
    if option is False or option is None:
        return None
    if isinstance(option, Journal):
        return option
    return Journal(option)


class _RequestIds:
    """Unique request ids of at most 20 characters, across processes and restarts.

    Milliseconds since the epoch (11 hex digits) and 6 random hex digits; the
    random part is redrawn if a process asks twice in the same millisecond.
    """

    def __init__(self) -> None:
        self._last = ""
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            while True:
                candidate = f"{time.time_ns() // 1_000_000:011x}{secrets.randbits(24):06x}"
                if candidate != self._last:
                    self._last = candidate
                    return candidate


class _TerminalBase:
    """Everything a terminal client decides, without the I/O."""

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
    ) -> None:
        self.url = url
        self.client_id = check_field("client_id", client_id, allow_empty=False)
        self.timeout = _positive_seconds("timeout", timeout)
        self.connect_timeout = _positive_seconds("connect_timeout", connect_timeout)
        self.status_timeout = _positive_seconds("status_timeout", status_timeout)
        self.recovery_timeout = _positive_seconds("recovery_timeout", recovery_timeout)
        self.lock_timeout = _positive_seconds("lock_timeout", lock_timeout)
        self.transliterate = transliterate
        self.journal = _open_journal(journal)
        lock_dir = (self.journal.path.parent if self.journal else default_data_dir()) / "locks"
        self._lock_dir: Path = lock_dir
        self._ids = _RequestIds()

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

    def _lock(self) -> TerminalLock:
        return TerminalLock(self._lock_dir, self.url, wait=self.lock_timeout)

    def _timeout_for(self, request: Request) -> float:
        # last trans is answered from the terminal's memory; no customer in the loop.
        return self.status_timeout if isinstance(request, LastTrans) else self.timeout

    # --- the journaled exchange, step by step ------------------------------------------

    def _guard(self, request: Request, force: bool, open_: list[Entry]) -> None:
        """Refuse a new sale while a payment on this terminal is still in doubt."""
        if force or not isinstance(request, Sale) or not open_:
            return
        ids = tuple(e.id for e in open_)
        raise InDoubtPending(
            f"{self.url}: payment(s) {', '.join(map(str, ids))} still in doubt; look at the "
            "terminal's receipts and resolve them (ecrlink journal resolve) before a new "
            "sale, or pass force=True",
            ids,
        )

    def _begin(self, request: Request) -> int | None:
        if wire_log.isEnabledFor(logging.DEBUG):
            wire_log.debug(">>> %s [pid %d]", request.line(), os.getpid())
        return self.journal.begin(self.url, request) if self.journal else None

    def _interpret(self, request: Request, raw: bytes) -> Result:
        if wire_log.isEnabledFor(logging.DEBUG):
            wire_log.debug("<<< %s", mask_card_numbers(raw)[0].decode("utf-8", "replace"))
        result = check_answers(parse_reply(raw), request)
        if result.transaction is not None and result.transaction.card_no_was_unmasked:
            log.warning(
                "terminal %s sent an unmasked card number; it was masked (%s)",
                self.url, result.transaction.card_no,
            )
        return result

    def _record(self, entry_id: int | None, result: Result) -> Result:
        if entry_id is not None and self.journal is not None:
            self.journal.record_result(entry_id, result)
            result.journal_id = entry_id
        return result

    def _on_amount_mismatch(self, entry_id: int | None, exc: AmountMismatch, raw: bytes) -> None:
        """The card was charged another amount: record the approval, then be loud."""
        if entry_id is not None and self.journal is not None:
            result = parse_reply(raw)
            self.journal.record_result(entry_id, result, note=f"AMOUNT MISMATCH: {exc}")
        log.error("%s: %s", self.url, exc)

    def _on_failure(self, request: Request, entry_id: int | None, exc: BaseException) -> bool:
        """Record a failed exchange; True if the outcome must be resolved with last trans."""
        money = isinstance(request, Sale | Void)
        if isinstance(exc, _NOT_SENT):
            state, note = State.FAILED, f"not sent: {exc}"
        elif isinstance(exc, TransportError | RemoteProtocolError) and isinstance(
            request, LastTrans
        ):
            state, note = State.FAILED, str(exc)
        elif isinstance(exc, EcrError):
            state, note = State.IN_DOUBT, str(exc)
        else:  # Ctrl-C, or a bug: the terminal may still finish the payment
            state, note = State.IN_DOUBT, f"interrupted ({type(exc).__name__})"
        if entry_id is not None and self.journal is not None:
            self.journal.record_failure(entry_id, state, note)
        return state is State.IN_DOUBT and money and isinstance(exc, EcrError)

    def _previous_approval(self, entry_id: int | None) -> Entry | None:
        if self.journal is None or entry_id is None:
            return None
        return self.journal.last_approved_before(self.url, entry_id)

    def _conclude(
        self, request_id: str, amount: int | None, command: str, client_id: str,
        entry_id: int | None, last: Result | None, why: str,
    ) -> Result:
        """Turn what last trans said (or that it never answered) into the final result."""
        if last is None:
            verdict, reason = Verdict.UNKNOWN, "last trans got no answer"
        else:
            judgement = judge(request_id, amount, self._previous_approval(entry_id), last)
            verdict, reason = judgement.verdict, judgement.reason
        detail = f"{why}; {reason}"
        if verdict is Verdict.APPROVED and last is not None:
            result = replace(
                last, command=command, request_id=request_id, client_id=client_id,
                detail=detail, journal_id=entry_id,
            )
            if entry_id is not None and self.journal is not None:
                self.journal.record_result(
                    entry_id, result, by=ResolvedBy.LAST_TRANS, note=detail
                )
            return result
        if verdict is Verdict.NOT_APPROVED:
            outcome = Outcome.DECLINED
            if entry_id is not None and self.journal is not None:
                self.journal.resolve(
                    entry_id, State.DECLINED, by=ResolvedBy.LAST_TRANS, note=detail
                )
        else:
            outcome = Outcome.UNKNOWN
            log.warning("%s: payment %s is in doubt: %s", self.url, request_id, detail)
        # No reply of its own: status None says the terminal never answered this request.
        return Result(
            command=command, status=None, outcome=outcome, request_id=request_id,
            client_id=client_id, detail=detail, journal_id=entry_id,
        )

    # --- the flows: the whole transaction logic, written once ------------------------
    # Each flow is a generator that yields the I/O it needs (an exchange with the
    # terminal, or a pause) and gets the reply back, or the transport's exception
    # thrown in. ``Terminal`` and ``AsyncTerminal`` only drive them.

    def _send_flow(self, request: Request, force: bool) -> Flow[Result]:
        """Under the lock: recover crash leftovers, apply the guard, exchange."""
        open_ = self._orphans()
        if open_:
            yield from self._resolve_flow(patient=False)
            open_ = self._orphans()
        self._guard(request, force, open_)
        return (yield from self._exchange_flow(request))

    def _exchange_flow(self, request: Request) -> Flow[Result]:
        entry_id = self._begin(request)
        raw = b""
        try:
            raw = yield _Exchange(request.line(), self._timeout_for(request))
            return self._record(entry_id, self._interpret(request, raw))
        except AmountMismatch as exc:
            self._on_amount_mismatch(entry_id, exc, raw)
            raise
        except BaseException as exc:
            if not self._on_failure(request, entry_id, exc):
                raise
            why = str(exc)
        amount = request.amount if isinstance(request, Sale) else None
        last = yield from self._last_trans_flow(time.monotonic() + self.recovery_timeout)
        return self._conclude(
            request.request_id, amount, request.command.value, request.client_id,
            entry_id, last, why,
        )

    def _last_trans_flow(self, deadline: float) -> Flow[Result | None]:
        """``last trans``, retried with backoff while the terminal is busy, until ``deadline``."""
        delay = 0.1
        while True:
            request = self._last()
            remaining = deadline - time.monotonic()
            try:
                raw = yield _Exchange(
                    request.line(), max(0.05, min(self.status_timeout, remaining))
                )
                return self._interpret(request, raw)
            except (TransportError, RemoteProtocolError, TerminalBusy) as exc:
                log.info("%s: last trans not answered yet (%s)", self.url, exc)
            if time.monotonic() + delay >= deadline:
                return None
            yield _Pause(delay)
            delay = min(delay * 2, 2.0)

    def _resolve_flow(self, *, patient: bool) -> Flow[list[Result]]:
        """Ask ``last trans`` about every unresolved payment on this terminal."""
        results: list[Result] = []
        assert self.journal is not None
        wait = self.recovery_timeout if patient else self.status_timeout
        for entry in self.journal.unresolved(self.url):
            last = yield from self._last_trans_flow(time.monotonic() + wait)
            results.append(self._conclude(
                entry.request_id, entry.amount, entry.command, entry.client_id, entry.id, last,
                entry.note or "in doubt",
            ))
        return results

    def _recover_flow(self) -> Flow[list[Result]]:
        """Under the lock: crash leftovers become in doubt, then all are resolved."""
        self._orphans()
        return (yield from self._resolve_flow(patient=True))

    def _orphans(self) -> list[Entry]:
        """Under the lock: crash leftovers become in doubt; return what is unresolved.

        One indexed query in the common case (nothing open): this runs before every
        command.
        """
        if self.journal is None:
            return []
        open_ = self.journal.open_entries(self.url)
        if any(e.state is State.PENDING for e in open_):
            self.journal.orphans_to_in_doubt(self.url)
            open_ = self.journal.open_entries(self.url)
        return [e for e in open_ if e.command in ("sale", "void")]


class Terminal(_TerminalBase):
    """A blocking client for one terminal.

    ``url`` is ``http://host[:port]``, ``https://…``, ``serial:///dev/ttyUSB0``,
    ``serial:COM3``, ``socket://host:port`` or ``rfc2217://host:port``. ``timeout``
    is how long a sale or void may wait for the customer; ``connect_timeout`` bounds
    reaching the terminal; ``status_timeout`` bounds one ``last trans``;
    ``recovery_timeout`` bounds resolving an in-doubt payment (retrying ``last trans``
    while the terminal is busy); ``lock_timeout`` bounds waiting for another
    transaction on the same terminal. See ``JournalOption`` for ``journal``.

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
        tls_fingerprint: str | None = None,
        transport: Transport | None = None,
    ) -> None:
        super().__init__(
            url, client_id=client_id, timeout=timeout, connect_timeout=connect_timeout,
            status_timeout=status_timeout, recovery_timeout=recovery_timeout,
            lock_timeout=lock_timeout, transliterate=transliterate, journal=journal,
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
        """Close the link to the terminal."""
        self._transport.close()

    # --- the I/O paths ---------------------------------------------------------------

    def _drive(self, flow: Flow[T]) -> T:
        """Run a flow: do the exchanges and pauses it asks for, blocking."""
        try:
            step = next(flow)
            while True:
                try:
                    if isinstance(step, _Pause):
                        time.sleep(step.seconds)
                        reply = b""
                    else:
                        reply = self._transport.exchange(step.line, timeout=step.timeout)
                except BaseException as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(reply)
        except StopIteration as done:
            result: T = done.value
            return result

    def send(self, request: Request, *, force: bool = False) -> Result:
        """Send one prepared request under the terminal's lock, journaled; see the class."""
        with self._lock():
            return self._drive(self._send_flow(request, force))

    def recover(self) -> list[Result]:
        """Resolve this terminal's pending and in-doubt payments with ``last trans``.

        Pending rows left by a crash become in doubt first. Returns one result per
        payment that was unresolved; those still unknown stay in doubt for the cashier.
        """
        if self.journal is None:
            return []
        with self._lock():
            return self._drive(self._recover_flow())

    def sale(
        self,
        amount: int,
        *,
        invoice: str | None = None,
        reference: str | None = None,
        fields: Mapping[int, str] | Sequence[str] | None = None,
        request_id: str | None = None,
        force: bool = False,
    ) -> Result:
        """Charge ``amount`` VND; ``invoice`` travels as F3, ``reference`` as F5.

        Refused with ``InDoubtPending`` while an earlier payment on this terminal is in
        doubt, unless ``force``.
        """
        return self.send(self._sale(amount, invoice, reference, fields, request_id), force=force)

    def void(self, receipt_no: int | str, *, request_id: str | None = None) -> Result:
        """Cancel the sale with this receipt number in the current batch."""
        return self.send(self._void(receipt_no, request_id))

    def settle(self, *, confirm: bool = True, request_id: str | None = None) -> Result:
        """Close the current batch (``settle|YES``; ``confirm=False`` sends ``NO``)."""
        return self.send(self._settle(confirm, request_id))

    def last_transaction(self, *, request_id: str | None = None) -> Result:
        """The terminal's most recent successful transaction (``last trans``)."""
        return self.send(self._last(request_id))


class AsyncTerminal(_TerminalBase):
    """The asyncio twin of :class:`Terminal`, with the same methods as coroutines.

    The lock is waited for in a worker thread so the event loop never blocks on it.
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
        tls_fingerprint: str | None = None,
        transport: AsyncTransport | None = None,
    ) -> None:
        super().__init__(
            url, client_id=client_id, timeout=timeout, connect_timeout=connect_timeout,
            status_timeout=status_timeout, recovery_timeout=recovery_timeout,
            lock_timeout=lock_timeout, transliterate=transliterate, journal=journal,
        )
        self._transport = transport or open_async_transport(
            url, connect_timeout=self.connect_timeout, tls_fingerprint=tls_fingerprint
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the link to the terminal."""
        await self._transport.aclose()

    async def _drive(self, flow: Flow[T]) -> T:
        """Run a flow: do the exchanges and pauses it asks for, awaiting."""
        try:
            step = next(flow)
            while True:
                try:
                    if isinstance(step, _Pause):
                        await asyncio.sleep(step.seconds)
                        reply = b""
                    else:
                        reply = await self._transport.exchange(step.line, timeout=step.timeout)
                except BaseException as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(reply)
        except StopIteration as done:
            result: T = done.value
            return result

    async def _locked(self, flow: Flow[T]) -> T:
        # The lock is waited for in a worker thread so the event loop never blocks on it.
        lock = self._lock()
        await asyncio.to_thread(lock.__enter__)
        try:
            return await self._drive(flow)
        finally:
            lock.__exit__(None, None, None)

    async def send(self, request: Request, *, force: bool = False) -> Result:
        """Send one prepared request under the terminal's lock, journaled."""
        return await self._locked(self._send_flow(request, force))

    async def recover(self) -> list[Result]:
        """Resolve this terminal's pending and in-doubt payments with ``last trans``."""
        if self.journal is None:
            return []
        return await self._locked(self._recover_flow())

    async def sale(
        self,
        amount: int,
        *,
        invoice: str | None = None,
        reference: str | None = None,
        fields: Mapping[int, str] | Sequence[str] | None = None,
        request_id: str | None = None,
        force: bool = False,
    ) -> Result:
        """Charge ``amount`` VND; ``invoice`` travels as F3, ``reference`` as F5."""
        return await self.send(
            self._sale(amount, invoice, reference, fields, request_id), force=force
        )

    async def void(self, receipt_no: int | str, *, request_id: str | None = None) -> Result:
        """Cancel the sale with this receipt number in the current batch."""
        return await self.send(self._void(receipt_no, request_id))

    async def settle(self, *, confirm: bool = True, request_id: str | None = None) -> Result:
        """Close the current batch."""
        return await self.send(self._settle(confirm, request_id))

    async def last_transaction(self, *, request_id: str | None = None) -> Result:
        """The terminal's most recent successful transaction (``last trans``)."""
        return await self.send(self._last(request_id))

